package fs

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
