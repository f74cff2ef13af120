package ddbtest

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// ProxyMode is what a Proxy does to the traffic between a client and
// DynamoDB Local.
type ProxyMode int

const (
	// Pass forwards everything.
	Pass ProxyMode = iota
	// Freeze accepts connections and holds every byte in both directions;
	// when the mode changes, the connections that held bytes are closed
	// and nothing they held is delivered — DynamoDB as seen from a client
	// while its network path is black-holed.
	Freeze
	// Refuse closes every open connection and the listener: new
	// connections are refused, as when DynamoDB is down.
	Refuse
)

// Proxy is a TCP proxy on loopback in front of DynamoDB Local that can
// freeze, delay or refuse traffic. Tests point a client at URL() and change
// the mode while the application runs; DynamoDB Local itself is shared by
// every package's tests and is never stopped.
type Proxy struct {
	target string
	addr   string

	mu      sync.Mutex
	mode    ProxyMode
	delay   time.Duration
	thawed  chan struct{} // closed when a Freeze ends
	ln      net.Listener
	conns   map[net.Conn]struct{}
	closed  bool
	done    chan struct{} // closed by Close: ends delays
	stopped sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target
// ("127.0.0.1:8000", or a URL's host). Close it when done.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}, done: make(chan struct{})}
	p.serve(ln)
	return p, nil
}

// URL is the proxy's endpoint for the SDK (BaseEndpoint).
func (p *Proxy) URL() string { return "http://" + p.addr }

// Set changes the mode. Leaving Freeze releases the held bytes; leaving
// Refuse listens again on the same port.
func (p *Proxy) Set(m ProxyMode) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || m == p.mode {
		return nil
	}
	old := p.mode
	p.mode = m
	if old == Freeze {
		close(p.thawed)
	}
	switch m {
	case Freeze:
		p.thawed = make(chan struct{})
	case Refuse:
		_ = p.ln.Close()
		for c := range p.conns {
			_ = c.Close()
		}
	}
	if old == Refuse {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			return err
		}
		p.serve(ln)
	}
	return nil
}

// SetDelay holds every chunk sent towards DynamoDB for d before passing it
// on (0: none).
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Close stops the proxy and every connection through it.
func (p *Proxy) Close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.done)
		if p.mode == Freeze {
			close(p.thawed)
		}
		_ = p.ln.Close()
		for c := range p.conns {
			_ = c.Close()
		}
	}
	p.mu.Unlock()
	p.stopped.Wait()
}

// serve runs under p.mu or before p is shared.
func (p *Proxy) serve(ln net.Listener) {
	p.ln = ln
	p.stopped.Add(1)
	go func() {
		defer p.stopped.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.stopped.Add(1)
			go func() {
				defer p.stopped.Done()
				p.handle(c)
			}()
		}
	}()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode == Refuse {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *Proxy) handle(client net.Conn) {
	if !p.track(client) {
		return
	}
	defer p.untrack(client)
	// A frozen DynamoDB still completes the TCP handshake (the kernel
	// does); the proxy connects upstream only when the first bytes may go.
	first := make([]byte, 32<<10)
	n, err := client.Read(first)
	if err != nil {
		return
	}
	if !p.gate(true) {
		return
	}
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		return
	}
	if !p.track(up) {
		return
	}
	defer p.untrack(up)
	if _, err := up.Write(first[:n]); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pump(up, client, true); done <- struct{}{} }()
	go func() { p.pump(client, up, false); done <- struct{}{} }()
	<-done
	_ = client.Close()
	_ = up.Close()
	<-done
}

// pump copies src to dst, passing each chunk through the gate.
func (p *Proxy) pump(dst, src net.Conn, towardsServer bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.gate(towardsServer) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// gate waits while the proxy is frozen and applies the delay; false means
// the connection must end (a freeze ended, Refuse, or the proxy closed).
func (p *Proxy) gate(towardsServer bool) bool {
	p.mu.Lock()
	mode, thawed, delay, closed := p.mode, p.thawed, p.delay, p.closed
	p.mu.Unlock()
	switch {
	case closed || mode == Refuse:
		return false
	case mode == Freeze:
		// Nothing sent during a freeze arrives afterwards: the connection
		// ends, as after a network partition. (Held bytes that landed
		// later would turn a timed-out write into one that happened —
		// real, and covered by the stores' own fault tests.)
		<-thawed
		return false
	}
	if towardsServer && delay > 0 {
		select {
		case <-time.After(delay):
		case <-p.done:
			return false
		}
	}
	return true
}

// Conns is the number of open connections through the proxy (both sides).
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}
