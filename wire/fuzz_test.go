package wire_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/harkapp/hark/wire"
)

// chunkReader hands out data in chunks whose sizes come from cuts (each
// byte a size from 1 to 256), then the rest in one go. Only the chunk
// sizes vary: the Reader must return the same result for every split.
type chunkReader struct {
	data, cuts []byte
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.cuts) > 0 {
		n = min(n, int(c.cuts[0])+1)
		c.cuts = c.cuts[1:]
	}
	n = copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// expectLines is the reference model of Reader on a complete input: the
// lines it must return and the error that must end them.
func expectLines(in []byte) ([][]byte, error) {
	var lines [][]byte
	for {
		i := bytes.IndexByte(in, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSuffix(in[:i], []byte{'\r'})
		if len(line) > wire.MaxLine {
			return lines, wire.ErrLineTooLong
		}
		lines = append(lines, line)
		in = in[i+1:]
	}
	switch {
	case len(in) == 0:
		return lines, io.EOF
	case len(bytes.TrimSuffix(in, []byte{'\r'})) > wire.MaxLine:
		return lines, wire.ErrLineTooLong
	default:
		return lines, io.ErrUnexpectedEOF
	}
}

func FuzzReader(f *testing.F) {
	long := strings.Repeat("L", wire.MaxLine)
	seeds := []struct{ data, cuts string }{
		{"", ""},
		{"\n", ""},
		{"\r\n", "\x00"},
		{"random?\r\nclassified?\r\n", "\x03\x07"},
		{"notif\nstop_notif\nhello abc\n", "\x00\x00\x00\x00"},
		{"a\rb\r\r\n\r", "\x01"},
		{"partial", "\x02"},
		{long + "\r\n" + long + "\n", "\xff\xff\x10"},
		{long + "\r\r\n", "\xff"},
		{long + "X\n", "\x80"},
		{long + "X", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"},
		{long + "\r", ""},
		{"ok\n" + long + long, "\x02\xff"},
		{"\x00\xff\xfe\x80\n\xc3\x28\r\n\x7f", "\x01\x02\x03"},
	}
	for _, s := range seeds {
		f.Add([]byte(s.data), []byte(s.cuts))
	}
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		in := bytes.Clone(data)
		r := wire.NewReader(&chunkReader{data: data, cuts: cuts})

		var got [][]byte
		var err error
		pos := 0 // how much of the input the returned lines account for
		for {
			var line []byte
			line, err = r.ReadLine()
			if err != nil {
				break
			}
			if len(line) > wire.MaxLine {
				t.Fatalf("line %d is %d bytes, over MaxLine", len(got), len(line))
			}
			if bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("line %d contains '\\n': %q", len(got), line)
			}
			// The line, then its own terminator ("\r\n" or "\n"), must be
			// the next bytes of the input.
			if !bytes.HasPrefix(in[pos:], line) {
				t.Fatalf("line %d %q is not the input at offset %d", len(got), line, pos)
			}
			pos += len(line)
			switch {
			case bytes.HasPrefix(in[pos:], []byte("\r\n")):
				pos += 2
			case bytes.HasPrefix(in[pos:], []byte("\n")):
				pos++
			default:
				t.Fatalf("line %d is not followed by a terminator at offset %d", len(got), pos)
			}
			got = append(got, bytes.Clone(line))
			if len(got) > len(in)+1 {
				t.Fatalf("%d lines from %d bytes", len(got), len(in))
			}
		}

		want, wantErr := expectLines(in)
		if len(got) != len(want) {
			t.Fatalf("got %d lines, want %d", len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("line %d = %q, want %q", i, got[i], want[i])
			}
		}
		if !errors.Is(err, wantErr) {
			t.Fatalf("err = %v, want %v", err, wantErr)
		}
		if wantErr == io.EOF && pos != len(in) {
			t.Fatalf("io.EOF after consuming %d of %d bytes", pos, len(in))
		}
	})
}
