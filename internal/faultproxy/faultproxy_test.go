package faultproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echo starts a line echo server on 127.0.0.1 and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

type client struct {
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

func (c *client) send(t *testing.T, s string) {
	t.Helper()
	if _, err := c.c.Write([]byte(s + "\n")); err != nil {
		t.Fatal(err)
	}
}

// read returns the next line, or an error when none comes within d.
func (c *client) read(d time.Duration) (string, error) {
	_ = c.c.SetReadDeadline(time.Now().Add(d))
	return c.r.ReadString('\n')
}

func TestForwardPauseResume(t *testing.T) {
	p := Start(t, echo(t))
	c := dial(t, p.Addr())
	c.send(t, "one")
	if got, err := c.read(2 * time.Second); err != nil || got != "one\n" {
		t.Fatalf("forwarded: %q, %v", got, err)
	}
	p.Pause()
	c.send(t, "two")
	p.WaitHeld(t, 1, 2*time.Second)
	if got, err := c.read(100 * time.Millisecond); err == nil {
		t.Fatalf("answered while paused: %q", got)
	}
	late := dial(t, p.Addr()) // a connection made during the pause is held too
	late.send(t, "three")
	p.WaitHeld(t, 2, 2*time.Second)
	p.Resume()
	if got, err := c.read(2 * time.Second); err != nil || got != "two\n" {
		t.Fatalf("held bytes after Resume: %q, %v", got, err)
	}
	if got, err := late.read(2 * time.Second); err != nil || got != "three\n" {
		t.Fatalf("held connection after Resume: %q, %v", got, err)
	}
	if n := p.Held(); n != 0 {
		t.Fatalf("Held after Resume = %d", n)
	}
}

func TestCutRestore(t *testing.T) {
	p := Start(t, echo(t))
	c := dial(t, p.Addr())
	p.Cut()
	if _, err := c.read(2 * time.Second); err == nil {
		t.Fatal("open connection survived Cut")
	}
	refused := dial(t, p.Addr())
	refused.send(t, "x")
	if _, err := refused.read(2 * time.Second); err == nil {
		t.Fatal("connection made during Cut was answered")
	}
	p.Restore()
	ok := dial(t, p.Addr())
	ok.send(t, "back")
	if got, err := ok.read(2 * time.Second); err != nil || got != "back\n" {
		t.Fatalf("after Restore: %q, %v", got, err)
	}
}

func TestHangRestore(t *testing.T) {
	p := Start(t, echo(t))
	open := dial(t, p.Addr())
	open.send(t, "warm")
	if _, err := open.read(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	p.Hang()
	open.send(t, "lost")
	fresh := dial(t, p.Addr()) // accepted, never forwarded
	fresh.send(t, "lost too")
	p.WaitHeld(t, 1, 2*time.Second)
	if _, err := open.read(200 * time.Millisecond); err == nil {
		t.Fatal("open connection answered during Hang")
	}
	if _, err := fresh.read(100 * time.Millisecond); err == nil {
		t.Fatal("new connection answered during Hang")
	}
	p.Restore()
	for name, c := range map[string]*client{"open": open, "fresh": fresh} {
		if got, err := c.read(2 * time.Second); err == nil {
			t.Fatalf("%s connection delivered %q after Restore; want it closed", name, got)
		}
	}
	c := dial(t, p.Addr())
	c.send(t, "back")
	if got, err := c.read(2 * time.Second); err != nil || got != "back\n" {
		t.Fatalf("after Restore: %q, %v", got, err)
	}
}
