package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/users"
)

// Section 4: a login flood. n browsers, each with a login form and its
// nonce, post their login at the same instant through the whole stack on
// DynamoDB Local, with the default argon2id (m=19 MiB, t=2, p=1). Each
// variant runs in a fresh process (this program, re-executed), so that none
// inherits another's heap; the child reports its peak resident set (VmHWM)
// and every login's latency.

const floodEnv = "BENCHREPORT_FLOOD_CHILD"

// floodVariant is one configuration of the hashing limiter.
type floodVariant struct {
	Name string
	Desc string
}

var floodVariants = []floodVariant{
	{"limiter", "default limiter: GOMAXPROCS hashing slots, 2 s wait, then 503 + Retry-After"},
	{"limiter-queue", "limiter with a 1 h wait: every login is served, in turn"},
	{"unbounded", "no limiter: all logins hash at once (HashConcurrency = n)"},
}

// floodJob is what the parent tells a child.
type floodJob struct {
	Variant  string
	Endpoint string
	Table    string
	Secret   string // hex
	N        int
}

// floodRun is what a child reports.
type floodRun struct {
	Variant   string
	PeakKiB   int64
	OK        int
	Busy      int // 503: no hashing slot within the wait
	Other     int
	ElapsedMS float64
	OKMS      []float64 // latency of each successful login
	BusyMS    []float64 // latency of each 503
	Skipped   string    `json:",omitempty"`
}

// floodChild runs one variant in this process and prints its result.
func floodChild(spec string) error {
	var job floodJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		return err
	}
	secret, err := hex.DecodeString(job.Secret)
	if err != nil {
		return err
	}
	keys, err := dynaguard.NewKeyring(secret)
	if err != nil {
		return err
	}
	mod := func(c *users.Config) {}
	switch job.Variant {
	case "limiter":
	case "limiter-queue":
		mod = func(c *users.Config) { c.HashWait = time.Hour }
	case "unbounded":
		mod = func(c *users.Config) { c.HashConcurrency = job.N; c.HashWait = time.Hour }
	default:
		return fmt.Errorf("unknown variant %q", job.Variant)
	}
	tbl := dynaguard.NewTable(client(job.Endpoint), job.Table)
	in, err := newInstance(tbl, keys, instanceConfig{Users: mod})
	if err != nil {
		return err
	}
	// Every browser loads the login form first (no DynamoDB call).
	type pending struct {
		b    *browser
		form map[string]string
	}
	ps := make([]pending, job.N)
	for i := range ps {
		b := newBrowser(in.secure, fmt.Sprintf("10.%d.%d.%d", 1+i/65536, (i/256)%256, i%256))
		tok, err := b.token("/login")
		if err != nil {
			return err
		}
		ps[i] = pending{b, map[string]string{"nonce": tok, "login": benchUsername, "password": benchPassword}}
	}
	runtime.GC()
	res := floodRun{Variant: job.Variant}
	var mu sync.Mutex
	var wg sync.WaitGroup
	startGun := make(chan struct{})
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGun
			t0 := time.Now()
			w := p.b.post("/login", p.form)
			ms := float64(time.Since(t0).Microseconds()) / 1000
			mu.Lock()
			defer mu.Unlock()
			switch w.Code {
			case http.StatusSeeOther:
				res.OK++
				res.OKMS = append(res.OKMS, ms)
			case http.StatusServiceUnavailable:
				res.Busy++
				res.BusyMS = append(res.BusyMS, ms)
			default:
				res.Other++
			}
		}()
	}
	t0 := time.Now()
	close(startGun)
	wg.Wait()
	res.ElapsedMS = float64(time.Since(t0).Milliseconds())
	res.PeakKiB = vmHWM()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// floodSection registers the account, then runs every variant runs times,
// each in a fresh process, alternating variants.
func floodSection(ctx context.Context, ts *tables, ep string, n, runs int, logf func(string, ...any)) (map[string][]floodRun, error) {
	tbl, err := ts.create(ctx, "flood")
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i*7 + 1)
	}
	keys, err := dynaguard.NewKeyring(secret)
	if err != nil {
		return nil, err
	}
	in, err := newInstance(tbl, keys, instanceConfig{})
	if err != nil {
		return nil, err
	}
	if _, err := in.users.Create(ctx, users.NewUser{Email: benchEmail, Username: benchUsername, Password: benchPassword}); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	out := map[string][]floodRun{}
	for r := range runs {
		for _, v := range floodVariants {
			if v.Name == "unbounded" {
				// n × 19 MiB must fit, with room to spare for everyone else.
				if need := int64(n) * 19 * 1024 * 3 / 2; memAvailableKiB() < need {
					out[v.Name] = append(out[v.Name], floodRun{Variant: v.Name,
						Skipped: fmt.Sprintf("needs about %d MiB available, %d MiB are", need/1024, memAvailableKiB()/1024)})
					continue
				}
			}
			job, _ := json.Marshal(floodJob{Variant: v.Name, Endpoint: ep, Table: tbl.Name, Secret: hex.EncodeToString(secret), N: n})
			cmd := exec.CommandContext(ctx, self)
			cmd.Env = append(os.Environ(), floodEnv+"="+string(job))
			cmd.Stderr = os.Stderr
			raw, err := cmd.Output()
			if err != nil {
				return nil, fmt.Errorf("flood child %s: %w", v.Name, err)
			}
			var res floodRun
			if err := json.Unmarshal(raw, &res); err != nil {
				return nil, fmt.Errorf("flood child %s: %w: %q", v.Name, err, raw)
			}
			if res.Other != 0 {
				return nil, fmt.Errorf("flood child %s: %d logins failed unexpectedly", v.Name, res.Other)
			}
			logf("flood %s run %d: peak %d MiB, %d ok, %d busy, %.1f s", v.Name, r+1, res.PeakKiB/1024, res.OK, res.Busy, res.ElapsedMS/1000)
			out[v.Name] = append(out[v.Name], res)
		}
	}
	return out, nil
}

// vmHWM returns this process's peak resident set in KiB (Linux).
func vmHWM() int64 { return procField("/proc/self/status", "VmHWM:") }

// memAvailableKiB returns the memory available for new work in KiB.
func memAvailableKiB() int64 { return procField("/proc/meminfo", "MemAvailable:") }

func procField(file, field string) int64 {
	f, err := os.Open(file)
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}
