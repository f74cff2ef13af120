// Package scripts_test checks the project's scripts as a user runs them.
package scripts_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// make run must stop DynamoDB Local and the app whichever way it is asked
// to: SIGTERM to make (which GNU make passes on to the recipe) and SIGINT to
// make alone (which GNU make does not pass on; the script notices it). Each
// runs on ports of its own, never the shared instance's.
func TestMakeRunStopsOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("starts DynamoDB Local and the example app")
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			if sig == syscall.SIGINT && sigIgnored(t, sig) {
				t.Skip("SIGINT is ignored in this process, so make would ignore it too (started in the background of a shell without job control)")
			}
			ddbPort, appPort := freePort(t), freePort(t)
			cmd := exec.Command("make", "--no-print-directory", "run", "ARGS=-addr 127.0.0.1:"+strconv.Itoa(appPort))
			cmd.Dir = ".."
			cmd.Env = append(cleanEnv(), "DYNAMODB_LOCAL_PORT="+strconv.Itoa(ddbPort))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				// Last resort, only for what this test started (found by its ports).
				for _, pid := range processesMentioning(ddbPort, appPort) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			})

			url := fmt.Sprintf("http://127.0.0.1:%d/", appPort)
			deadline := time.Now().Add(3 * time.Minute)
			for {
				if resp, err := http.Get(url); err == nil {
					resp.Body.Close()
					break
				}
				select {
				case err := <-done:
					t.Fatalf("make run ended before the app answered: %v\n%s", err, out.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("the app never answered on %s\n%s", url, out.String())
				}
				time.Sleep(200 * time.Millisecond)
			}
			if len(processesMentioning(ddbPort, appPort)) < 2 {
				t.Fatalf("expected DynamoDB Local and the app to be running: %v", processesMentioning(ddbPort, appPort))
			}

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(40 * time.Second):
				t.Fatalf("make run did not end within 40 s of %v\n%s", sig, out.String())
			}
			if left := processesMentioning(ddbPort, appPort); len(left) > 0 {
				t.Fatalf("processes left after %v: %v\n%s", sig, left, out.String())
			}
			for _, p := range []int{ddbPort, appPort} {
				if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), time.Second); err == nil {
					c.Close()
					t.Errorf("port %d still answers", p)
				}
			}
			for _, want := range []string{"example: shutting down", "dynamodb-local: stopped"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

// cleanEnv is this process's environment without make's variables (the
// outer make's jobserver and flags are not for the inner one) and without
// the test endpoint.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DYNAMODB_ENDPOINT", "AWS_ENDPOINT_URL_DYNAMODB", "DYNAMODB_LOCAL_PORT":
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// processesMentioning lists the processes whose command line names one of
// the ports (DynamoDB Local's -port, the app's -addr).
func processesMentioning(ports ...int) []int {
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		for i, a := range args {
			for _, p := range ports {
				ps := strconv.Itoa(p)
				if (a == "-port" && i+1 < len(args) && args[i+1] == ps) || strings.HasSuffix(a, "127.0.0.1:"+ps) {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

func sigIgnored(t *testing.T, sig syscall.Signal) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}
