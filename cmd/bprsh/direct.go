package main

import "strings"

// directWords returns the words of a command the shell would simply exec
// (an absolute path and plain arguments: no quotes, expansions,
// assignments, redirections or separators), nil for any other command.
// bprsh execs such a command itself instead of through /bin/sh -c, with
// the same argv, so that the master ships the program and the libraries it
// needs (the library cache) rather than the node's shell finding it.
func directWords(command string) []string {
	words := strings.Fields(command)
	if len(words) == 0 || !strings.HasPrefix(words[0], "/") || strings.Contains(words[0], "=") {
		return nil
	}
	for _, r := range command {
		if !plain(r) {
			return nil
		}
	}
	return words
}

// plain: a rune that means itself to sh, or a blank between words.
func plain(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune(" \t_./+-:,@%=", r)
}
