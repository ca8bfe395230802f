package synth

import (
	"fmt"
	"strings"
	"syscall"
)

// SplitCommand splits a ctl line into words the way a shell would for the
// simple cases: whitespace separates, 'single quotes' keep everything,
// "double quotes" honour \" \\ \$ \` escapes, and a backslash outside quotes
// escapes the next byte. Unbalanced quotes are an EINVAL error.
func SplitCommand(line string) ([]string, error) {
	var (
		words []string
		cur   strings.Builder
		inTok bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inTok {
				words = append(words, cur.String())
				cur.Reset()
				inTok = false
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote: %w", syscall.EINVAL)
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			inTok = true
		case c == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated double quote: %w", syscall.EINVAL)
			}
			inTok = true
		case c == '\\':
			if i+1 >= len(line) {
				return nil, fmt.Errorf("trailing backslash: %w", syscall.EINVAL)
			}
			i++
			cur.WriteByte(line[i])
			inTok = true
		default:
			cur.WriteByte(c)
			inTok = true
		}
	}
	if inTok {
		words = append(words, cur.String())
	}
	return words, nil
}

// Quote returns s quoted so that SplitCommand (and a POSIX shell) reads it
// back as one word.
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '=' || r == ':' || r == ',' || r == '+' ||
			(r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// JoinCommand quotes every word and joins them with spaces.
func JoinCommand(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

// MaxCommand is the longest ctl command (a line) a ctl file takes, as
// Linux's default ARG_MAX: a whole exec line with its environment fits,
// and a user cannot make the master buffer more per open file.
const MaxCommand = 2 << 20

// lineScanner finds where a ctl command ends: at the first newline outside
// quotes and not escaped, the rule SplitCommand (and a shell) reads words
// by, so an argument may hold a newline. It keeps its state between
// writes: a command may arrive in any number of pieces.
type lineScanner struct {
	quote byte // 0, '\'' or '"': inside that quote
	esc   bool // the previous byte was an escaping backslash
}

// scan returns the index of the newline ending the command in p, or -1.
func (s *lineScanner) scan(p []byte) int {
	for i, b := range p {
		if s.esc {
			s.esc = false
			continue
		}
		switch s.quote {
		case 0:
			switch b {
			case '\n':
				*s = lineScanner{}
				return i
			case '\\':
				s.esc = true
			case '\'', '"':
				s.quote = b
			}
		case '\'':
			if b == '\'' {
				s.quote = 0
			}
		case '"':
			switch b {
			case '\\':
				s.esc = true
			case '"':
				s.quote = 0
			}
		}
	}
	return -1
}
