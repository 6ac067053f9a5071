package wire_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"

	"github.com/harkapp/hark/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// errScriptDone is what scriptReader returns once its chunks are used up.
// A test that expects a result without further input asserts that it never
// sees this error.
var errScriptDone = errors.New("read past the end of the script")

// scriptReader returns its chunks one per Read, then errScriptDone.
type scriptReader struct {
	chunks [][]byte
	reads  int
}

func (s *scriptReader) Read(p []byte) (int, error) {
	s.reads++
	if len(s.chunks) == 0 {
		return 0, errScriptDone
	}
	n := copy(p, s.chunks[0])
	if n < len(s.chunks[0]) {
		s.chunks[0] = s.chunks[0][n:]
	} else {
		s.chunks = s.chunks[1:]
	}
	return n, nil
}

func script(chunks ...string) *scriptReader {
	s := &scriptReader{}
	for _, c := range chunks {
		s.chunks = append(s.chunks, []byte(c))
	}
	return s
}

// readAll reads lines until the first error, copying each line because the
// Reader reuses its buffer.
func readAll(r *wire.Reader) ([]string, error) {
	var lines []string
	for {
		line, err := r.ReadLine()
		if err != nil {
			return lines, err
		}
		lines = append(lines, string(line))
	}
}

var (
	maxLine  = strings.Repeat("x", wire.MaxLine)
	overLine = strings.Repeat("x", wire.MaxLine+1)
)

func TestReaderLines(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		lines []string
		err   error
	}{
		{"empty input", "", nil, io.EOF},
		{"CRLF", "random?\r\nclassified?\r\n", []string{"random?", "classified?"}, io.EOF},
		{"bare LF", "random?\nclassified?\n", []string{"random?", "classified?"}, io.EOF},
		{"mixed terminators", "a\r\nb\nc\r\n", []string{"a", "b", "c"}, io.EOF},
		{"empty line LF", "\n", []string{""}, io.EOF},
		{"empty line CRLF", "\r\n", []string{""}, io.EOF},
		{"empty lines between", "a\r\n\r\n\nb\n", []string{"a", "", "", "b"}, io.EOF},
		{"CR inside a line is kept", "a\rb\r\n", []string{"a\rb"}, io.EOF},
		{"only one trailing CR stripped", "a\r\r\n", []string{"a\r"}, io.EOF},
		{"lone CR line", "\r\r\n", []string{"\r"}, io.EOF},
		{"CR without LF is not a terminator", "a\rb\n", []string{"a\rb"}, io.EOF},
		{"NUL and high bytes pass through", "\x00\xff\xfe\n", []string{"\x00\xff\xfe"}, io.EOF},
		{"EOF inside a line", "abc", nil, io.ErrUnexpectedEOF},
		{"EOF inside a later line", "a\nbc", []string{"a"}, io.ErrUnexpectedEOF},
		{"EOF after a CR", "a\r", nil, io.ErrUnexpectedEOF},
		{"MaxLine with CRLF", maxLine + "\r\n", []string{maxLine}, io.EOF},
		{"MaxLine with LF", maxLine + "\n", []string{maxLine}, io.EOF},
		{"MaxLine twice", maxLine + "\r\n" + maxLine + "\n", []string{maxLine, maxLine}, io.EOF},
		{"MaxLine after a short line", "a\n" + maxLine + "\r\n", []string{"a", maxLine}, io.EOF},
		{"MaxLine then EOF after CR", maxLine + "\r", nil, io.ErrUnexpectedEOF},
		{"MaxLine+1 with CRLF", overLine + "\r\n", nil, wire.ErrLineTooLong},
		{"MaxLine+1 with LF", overLine + "\n", nil, wire.ErrLineTooLong},
		{"MaxLine+1 after a line", "ok\n" + overLine + "\n", []string{"ok"}, wire.ErrLineTooLong},
		// The CR that is kept counts: the line is MaxLine+1 bytes.
		{"MaxLine plus kept CR", maxLine + "\r\r\n", nil, wire.ErrLineTooLong},
		{"MaxLine+1 then EOF", overLine, nil, wire.ErrLineTooLong},
		{"far too long", strings.Repeat("y", 3*wire.MaxLine) + "\n", nil, wire.ErrLineTooLong},
	}
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"whole", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data with EOF", iotest.DataErrReader},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				r := wire.NewReader(rd.wrap(strings.NewReader(tt.in)))
				lines, err := readAll(r)
				if !equalLines(lines, tt.lines) {
					t.Errorf("lines = %s, want %s", summary(lines), summary(tt.lines))
				}
				if !errors.Is(err, tt.err) {
					t.Errorf("err = %v, want %v", err, tt.err)
				}
				// Errors are final: the next call must not return a line.
				if line, err2 := r.ReadLine(); err2 == nil {
					t.Errorf("ReadLine after %v returned %q", err, line)
				}
			})
		}
	}
}

// A line known to be too long is reported at once, without waiting for
// more input, so that a peer that sends 4097 bytes and waits gets an answer.
func TestReaderTooLongWithoutMoreInput(t *testing.T) {
	tests := []struct {
		name   string
		chunks []string
	}{
		{"4097 in one read", []string{overLine}},
		{"4097th byte in a later read", []string{maxLine, "x"}},
		{"4097th byte after many reads", []string{maxLine[:1000], maxLine[1000:4000], maxLine[4000:], "x"}},
		{"MaxLine, CR, then another byte", []string{maxLine + "\r", "x"}},
		{"MaxLine after a complete line", []string{"a\r\n" + maxLine[:10], maxLine[10:] + "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := script(tt.chunks...)
			r := wire.NewReader(s)
			lines, err := readAll(r)
			if !errors.Is(err, wire.ErrLineTooLong) {
				t.Fatalf("err = %v after lines %s, want ErrLineTooLong", err, summary(lines))
			}
			if len(s.chunks) != 0 {
				t.Errorf("%d chunks left unread", len(s.chunks))
			}
		})
	}
}

// A line that never ends is refused after reading a bounded amount.
func TestReaderEndlessLine(t *testing.T) {
	src := &countingReader{r: endless('z')}
	r := wire.NewReader(src)
	_, err := r.ReadLine()
	if !errors.Is(err, wire.ErrLineTooLong) {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
	if src.n > wire.MaxLine+2 {
		t.Errorf("read %d bytes before refusing the line, want at most %d", src.n, wire.MaxLine+2)
	}
	// The error is sticky: the stream cannot be resynchronised.
	if _, err := r.ReadLine(); !errors.Is(err, wire.ErrLineTooLong) {
		t.Errorf("second ReadLine err = %v, want ErrLineTooLong", err)
	}
}

// After a line too long, later complete lines are not returned either:
// the server has already answered "ERR line too long" and will close.
func TestReaderTooLongIsSticky(t *testing.T) {
	r := wire.NewReader(strings.NewReader(overLine + "\nrandom?\n"))
	for i := range 3 {
		if line, err := r.ReadLine(); !errors.Is(err, wire.ErrLineTooLong) {
			t.Fatalf("call %d: ReadLine = %q, %v, want ErrLineTooLong", i+1, line, err)
		}
	}
}

type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReaderSeveralLinesInOneRead(t *testing.T) {
	s := script("random?\r\nclassified?\nnotif\r\n\r\nstop_notif\n")
	r := wire.NewReader(s)
	want := []string{"random?", "classified?", "notif", "", "stop_notif"}
	for i, w := range want {
		line, err := r.ReadLine()
		if err != nil || string(line) != w {
			t.Fatalf("line %d = %q, %v, want %q", i, line, err, w)
		}
	}
	if s.reads != 1 {
		t.Errorf("underlying reads = %d, want 1", s.reads)
	}
	if _, err := r.ReadLine(); !errors.Is(err, errScriptDone) {
		t.Errorf("err = %v, want the underlying reader's error", err)
	}
}

func TestReaderOneByteReads(t *testing.T) {
	var in strings.Builder
	var want []string
	for i, n := range []int{0, 1, 2, 100, wire.MaxLine - 1, wire.MaxLine, 7, wire.MaxLine} {
		line := strings.Repeat(string(rune('a'+i)), n)
		want = append(want, line)
		in.WriteString(line)
		if i%2 == 0 {
			in.WriteString("\r\n")
		} else {
			in.WriteString("\n")
		}
	}
	src := &countingReader{r: iotest.OneByteReader(strings.NewReader(in.String()))}
	r := wire.NewReader(src)
	lines, err := readAll(r)
	if !errors.Is(err, io.EOF) {
		t.Fatalf("err = %v, want io.EOF", err)
	}
	if !equalLines(lines, want) {
		t.Fatalf("lines = %s, want %s", summary(lines), summary(want))
	}
	if src.n != in.Len() {
		t.Errorf("read %d bytes, input is %d", src.n, in.Len())
	}
}

func TestReaderBuffered(t *testing.T) {
	t.Run("new reader", func(t *testing.T) {
		if wire.NewReader(script("a\n")).Buffered() {
			t.Error("Buffered() = true before any read")
		}
	})

	// step is one ReadLine followed by a check of Buffered.
	type step struct {
		line     string
		buffered bool
	}
	tests := []struct {
		name   string
		chunks []string
		steps  []step
	}{
		{"one line per read", []string{"a\n", "b\n"}, []step{{"a", false}, {"b", false}}},
		{"two lines in one read", []string{"a\nb\n"}, []step{{"a", true}, {"b", false}}},
		{"CRLF pipelined", []string{"a\r\nb\r\nc\r\n"}, []step{{"a", true}, {"b", true}, {"c", false}}},
		{"partial line buffered", []string{"a\nb", "c\n"}, []step{{"a", false}, {"bc", false}}},
		{"only a CR of the next line", []string{"a\n\r"}, []step{{"a", false}}},
		{"empty line buffered", []string{"a\n\n"}, []step{{"a", true}, {"", false}}},
		{"line completed later", []string{"a\nb", "\nc\n"}, []step{{"a", false}, {"b", true}, {"c", false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := wire.NewReader(script(tt.chunks...))
			for i, st := range tt.steps {
				line, err := r.ReadLine()
				if err != nil || string(line) != st.line {
					t.Fatalf("step %d: ReadLine = %q, %v, want %q", i, line, err, st.line)
				}
				if got := r.Buffered(); got != st.buffered {
					t.Fatalf("step %d: Buffered() = %v, want %v", i, got, st.buffered)
				}
			}
		})
	}
}

// Buffered() == true promises that ReadLine will not touch the underlying
// reader: here any further Read fails, so a line must come from the buffer.
func TestReaderBufferedNeedsNoRead(t *testing.T) {
	in := "random?\r\n" + maxLine + "\r\n\n" + "x\n"
	s := script(in)
	r := wire.NewReader(s)
	if _, err := r.ReadLine(); err != nil {
		t.Fatal(err)
	}
	for r.Buffered() {
		if _, err := r.ReadLine(); err != nil {
			t.Fatalf("ReadLine after Buffered() = true: %v", err)
		}
	}
}

type zeroReader struct{ calls int }

func (z *zeroReader) Read([]byte) (int, error) { z.calls++; return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		lines  []string
	}{
		{"nothing at all", "", nil},
		{"after a line", "a\r\n", []string{"a"}},
		{"inside a line", "a\r\nbc", []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z := &zeroReader{}
			r := wire.NewReader(io.MultiReader(strings.NewReader(tt.prefix), z))
			lines, err := readAll(r)
			if !errors.Is(err, io.ErrNoProgress) {
				t.Fatalf("err = %v, want io.ErrNoProgress", err)
			}
			if !equalLines(lines, tt.lines) {
				t.Errorf("lines = %s, want %s", summary(lines), summary(tt.lines))
			}
			if z.calls > 1000 {
				t.Errorf("%d reads before giving up", z.calls)
			}
		})
	}
}

func TestReaderPassesOnReadErrors(t *testing.T) {
	boom := errors.New("connection reset")
	r := wire.NewReader(io.MultiReader(strings.NewReader("a\nb"), iotest.ErrReader(boom)))
	lines, err := readAll(r)
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if !equalLines(lines, []string{"a"}) {
		t.Errorf("lines = %s, want [a]", summary(lines))
	}
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// summary keeps failure messages readable when lines are 4096 bytes long.
func summary(lines []string) string {
	parts := make([]string, len(lines))
	for i, l := range lines {
		if len(l) > 20 {
			parts[i] = fmt.Sprintf("%q…(%d bytes)", l[:10], len(l))
		} else {
			parts[i] = fmt.Sprintf("%q", l)
		}
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// A pooled Reader gives its buffer back when nothing is buffered, takes
// one again for Free or a read, and keeps lines intact across that.
func TestPooledReaderReleaseAndFree(t *testing.T) {
	news := 0
	pool := &sync.Pool{New: func() any { news++; b := make([]byte, wire.MaxLine+2); return &b }}
	r := wire.NewPooledReader(strings.NewReader("ified?\r\nnot"), pool)
	if !r.Release() {
		t.Fatal("a fresh reader has something buffered")
	}
	// As a server does once an idle socket is readable.
	free := r.Free()
	if len(free) != wire.MaxLine+2 {
		t.Fatalf("Free() has room for %d bytes, want %d", len(free), wire.MaxLine+2)
	}
	r.Filled(copy(free, "random?\r\nclass"), nil)
	line, err := r.ReadLine()
	if err != nil || string(line) != "random?" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if r.Release() {
		t.Fatal("Release with a partial line buffered reported nothing buffered")
	}
	// The rest of the partial line comes from the underlying reader.
	if line, err = r.ReadLine(); err != nil || string(line) != "classified?" {
		t.Fatalf("second line %q, %v", line, err)
	}
	if _, err := r.ReadLine(); err != io.ErrUnexpectedEOF {
		t.Fatalf("partial line at EOF: %v", err)
	}
	if r.Release() {
		t.Fatal("Release with a partial line buffered")
	}
	if news != 1 {
		t.Errorf("the pool made %d buffers, want 1", news)
	}
}

// Free taken for a read that found nothing leaves the buffer to Release;
// an error recorded by Filled is ReadLine's, after the bytes before it.
func TestFreeNothingThenError(t *testing.T) {
	pool := &sync.Pool{New: func() any { b := make([]byte, wire.MaxLine+2); return &b }}
	r := wire.NewPooledReader(strings.NewReader(""), pool)
	_ = r.Free()
	r.Filled(0, nil)
	if !r.Release() {
		t.Fatal("Release after reading nothing reported something buffered")
	}
	r.Filled(copy(r.Free(), "notif\r\n"), io.EOF)
	if line, err := r.ReadLine(); err != nil || string(line) != "notif" {
		t.Fatalf("ReadLine before the error: %q, %v", line, err)
	}
	if _, err := r.ReadLine(); err != io.EOF {
		t.Fatalf("ReadLine after Filled met EOF: %v, want io.EOF", err)
	}
}
