package wire

import (
	"bytes"
	"errors"
	"io"
	"sync"
)

// ErrLineTooLong is returned by Reader.ReadLine for a line over MaxLine
// bytes. The stream cannot be resynchronised after it, so the connection
// should be closed.
var ErrLineTooLong = errors.New("line longer than 4096 bytes")

// Reader reads protocol lines: CRLF-terminated, a bare LF accepted, at most
// MaxLine bytes each. Unlike bufio.Scanner it never grows its buffer, and
// unlike bufio.Reader it can report whether a whole line is already
// buffered, which lets a server answer a pipelined batch with one write.
type Reader struct {
	rd         io.Reader
	buf        []byte // allocated on first read
	start, end int    // unread bytes are buf[start:end]
	scanned    int    // buf[start:scanned] holds no '\n'
	err        error  // sticky read error

	pool   *sync.Pool // of *[]byte; nil: the buffer is kept
	pooled *[]byte    // what buf came from, given back as is: boxing it again would allocate
}

// NewReader returns a Reader reading from rd.
func NewReader(rd io.Reader) *Reader { return &Reader{rd: rd} }

// NewPooledReader returns a Reader that takes its buffer from pool when it
// needs one and gives it back on Release. pool's New must return a *[]byte
// of at least MaxLine+2 bytes.
func NewPooledReader(rd io.Reader, pool *sync.Pool) *Reader {
	return &Reader{rd: rd, pool: pool}
}

// Release gives the buffer back to the pool when nothing is buffered, and
// reports whether nothing is: a server with many quiet connections can
// then wait for input without a buffer (the line returned last becomes
// invalid). Without a pool it only reports.
func (r *Reader) Release() bool {
	if r.start != r.end {
		return false
	}
	if r.pooled != nil {
		r.pool.Put(r.pooled)
		r.pooled, r.buf, r.start, r.end, r.scanned = nil, nil, 0, 0, 0
	}
	return true
}

// Free returns the room after the unread bytes, taking a buffer from the
// pool if the Reader holds none, for a read the caller makes itself; Filled
// then records it. A server with many quiet connections waits for a socket
// to become readable without a buffer, then reads into Free: when the read
// finds nothing after all, Release gives the buffer back.
func (r *Reader) Free() []byte {
	r.grab()
	return r.buf[r.end:]
}

// Filled records a read of n bytes into Free's slice, and its error, which
// ReadLine returns once the bytes before it are read.
func (r *Reader) Filled(n int, err error) {
	r.end += n
	if err != nil {
		r.err = err
	}
}

// ReadLine returns the next line without its terminator. The slice is only
// valid until the next call. A stream that ends inside a line returns
// io.ErrUnexpectedEOF; one that ends between lines returns io.EOF.
func (r *Reader) ReadLine() ([]byte, error) {
	for {
		if i := bytes.IndexByte(r.buf[r.scanned:r.end], '\n'); i >= 0 {
			nl := r.scanned + i
			line := r.buf[r.start:nl]
			r.start = nl + 1
			r.scanned = r.start
			line = bytes.TrimSuffix(line, []byte{'\r'})
			if len(line) > MaxLine {
				r.err = ErrLineTooLong
				return nil, r.err
			}
			return line, nil
		}
		r.scanned = r.end
		// The partial line is too long once it holds more than MaxLine
		// bytes besides a trailing "\r" that the "\n" may still follow.
		// Waiting for more input would leave a peer that sent 4097 bytes
		// without an answer.
		if r.partialTooLong() {
			r.err = ErrLineTooLong
			return nil, r.err
		}
		if r.err != nil {
			if r.err == io.EOF && r.end > r.start {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, r.err
		}
		r.fill()
	}
}

// Peek returns the bytes read and not yet returned as lines, without
// consuming them; valid until the next call. A server looks at a
// connection's first byte with it, before any line is complete.
func (r *Reader) Peek() []byte { return r.buf[r.start:r.end] }

// Buffered reports whether a complete line is already buffered, so that
// the next ReadLine returns without reading from the underlying reader.
func (r *Reader) Buffered() bool {
	return bytes.IndexByte(r.buf[r.scanned:r.end], '\n') >= 0
}

// Ready reports whether ReadLine would return without reading from the
// underlying reader: a complete line is buffered, or an error, or a
// partial line that is too long already. A server that waits for input
// in an event loop rather than in Read calls ReadLine only then.
func (r *Reader) Ready() bool {
	return r.err != nil || r.Buffered() || r.partialTooLong()
}

// partialTooLong reports whether the unread bytes, which hold no '\n',
// are more than MaxLine besides a trailing "\r" that the "\n" may still
// follow.
func (r *Reader) partialTooLong() bool {
	n := r.end - r.start
	if n > 0 && r.buf[r.end-1] == '\r' {
		n--
	}
	return n > MaxLine
}

func (r *Reader) fill() {
	r.grab()
	// A reader returning 0, nil forever would spin; io.Reader's contract
	// discourages it, and after a few tries it is treated as no progress.
	for tries := 0; tries < 100; tries++ {
		n, err := r.rd.Read(r.buf[r.end:])
		r.Filled(n, err)
		if n > 0 || err != nil {
			return
		}
	}
	r.err = io.ErrNoProgress
}

// grab makes sure there is a buffer with room after the unread bytes.
func (r *Reader) grab() {
	if r.buf == nil && r.pool != nil {
		r.pooled = r.pool.Get().(*[]byte)
		r.buf = (*r.pooled)[:MaxLine+2]
	}
	if r.buf == nil {
		r.buf = make([]byte, MaxLine+2) // a maximal line and its CRLF
	}
	if r.start > 0 { // slide the partial line to the front
		n := copy(r.buf, r.buf[r.start:r.end])
		r.scanned -= r.start
		r.start, r.end = 0, n
	}
}
