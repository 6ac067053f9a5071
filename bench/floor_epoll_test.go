//go:build linux

package bench

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// floorServerEpoll is floorServer without a goroutine per connection: the
// accepted sockets (non-blocking, as Go makes them) are spread over one
// epoll instance per core, each waited on by one goroutine that reads a
// ready socket's batch and writes its replies with raw system calls. The
// pushes are written as in floorServer.
func floorServerEpoll(n int) error {
	if err := raiseFileLimit(n, func(string) {}); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr())

	workers := runtime.GOMAXPROCS(0)
	// stop wakes every loop at the end: its read end is in each epoll set.
	var stop [2]int
	if err := unix.Pipe2(stop[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return err
	}
	defer unix.Close(stop[0])
	eps := make([]int, workers)
	for i := range eps {
		ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return err
		}
		defer unix.Close(ep)
		eps[i] = ep
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, stop[0], &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(stop[0])}); err != nil {
			return err
		}
	}
	conns := make([]net.Conn, 0, n) // kept: they own the descriptors
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	fds := make([]int, 0, n)
	maxFD := 0
	for i := range n {
		sc, err := ln.Accept()
		if err != nil {
			return err
		}
		conns = append(conns, sc)
		rc, err := sc.(*net.TCPConn).SyscallConn()
		if err != nil {
			return err
		}
		var fd int
		if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
			return err
		}
		fds = append(fds, fd)
		maxFD = max(maxFD, fd)
		if err := unix.EpollCtl(eps[i%workers], unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for _, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- floorLoop(ep, stop[0], maxFD)
		}()
	}
	fmt.Println("ready")
	ctl := bufio.NewScanner(os.Stdin)
	var werr error
	for ctl.Scan() && werr == nil {
		werr = pushAll(len(fds), func(i int) error {
			_, err := unix.Write(fds[i], []byte(floorPush))
			return err
		})
	}
	unix.Close(stop[1]) // every loop sees the pipe's end
	wg.Wait()
	close(errs)
	for err := range errs {
		werr = errors.Join(werr, err)
	}
	return errors.Join(werr, ctl.Err())
}

// floorLoop serves the sockets of one epoll instance until stopFD is
// readable (closed): it reads what each ready socket holds and writes the
// replies to each whole batch.
func floorLoop(ep, stopFD, maxFD int) error {
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 4096)
	got := make([]int, maxFD+1) // bytes of a batch read so far, by descriptor
	reply := []byte(floorReply)
	for {
		k, err := unix.EpollWait(ep, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:k] {
			fd := int(ev.Fd)
			if fd == stopFD {
				return nil
			}
			m, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EAGAIN) {
				continue
			}
			if err != nil || m == 0 {
				unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, fd, nil)
				continue
			}
			got[fd] += m
			for got[fd] >= len(floorBatch) {
				got[fd] -= len(floorBatch)
				if _, err := unix.Write(fd, reply); err != nil {
					return fmt.Errorf("reply: %w", err)
				}
			}
		}
	}
}
