package auth

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// PermissionWarning is a key file or key directory whose mode lets other
// users read the signing key or replace it. It is advice, not an error: the
// key still loads (ssh warns the same way; refusing would lock a user out
// of a key they share on purpose).
type PermissionWarning struct {
	// Path is the file or directory; Mode its permission bits.
	Path string
	Mode fs.FileMode
	// Problem says who can do what, Fix is the command that repairs it.
	Problem string
	Fix     string
}

// String is the warning as one line for stderr, without a "warning:"
// prefix: "<Problem>; run: <Fix>".
func (w PermissionWarning) String() string { return w.Problem + "; run: " + w.Fix }

// KeyPermissionWarnings checks the private key at privateKeyPath (following
// a symlink) and the directory holding it, as ssh does: a directory writable
// by its group or others lets them replace the key (or plant one where none
// exists yet), and a private key they can read lets them mint tokens (one
// they can write, replace it). It returns nothing for a path that does not
// exist or cannot be checked (the loader reports that), and nothing on
// Windows, where mode bits do not describe the ACLs.
func KeyPermissionWarnings(privateKeyPath string) []PermissionWarning {
	if runtime.GOOS == "windows" {
		return nil
	}
	var ws []PermissionWarning
	dir := filepath.Dir(privateKeyPath)
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o022 != 0 {
		ws = append(ws, PermissionWarning{
			Path: dir, Mode: st.Mode().Perm(),
			Problem: fmt.Sprintf("key directory %s is writable by %s (mode %04o): they can replace the key in it",
				dir, who(st.Mode(), 0o020, 0o002), st.Mode().Perm()),
			Fix: "chmod go-w " + shellArg(dir),
		})
	}
	st, err := os.Stat(privateKeyPath)
	if err != nil || !st.Mode().IsRegular() {
		return ws
	}
	m := st.Mode().Perm()
	var problem string
	switch {
	case m&0o044 != 0:
		problem = fmt.Sprintf("private key %s is readable by %s (mode %04o): they can mint tokens with it",
			privateKeyPath, who(m, 0o040, 0o004), m)
	case m&0o022 != 0:
		problem = fmt.Sprintf("private key %s is writable by %s (mode %04o): they can replace it",
			privateKeyPath, who(m, 0o020, 0o002), m)
	default:
		return ws
	}
	return append(ws, PermissionWarning{Path: privateKeyPath, Mode: m, Problem: problem, Fix: "chmod 600 " + shellArg(privateKeyPath)})
}

// who names the classes of users whose bits (group, other) are set in m.
func who(m fs.FileMode, group, other fs.FileMode) string {
	switch g, o := m&group != 0, m&other != 0; {
	case g && o:
		return "its group and all other users"
	case g:
		return "its group"
	default:
		return "all other users"
	}
}

// shellArg quotes p for a POSIX shell when it holds anything but the
// characters paths usually have, so a Fix can be pasted as it is; a
// leading "-" gets "./" so chmod cannot take the path for an option.
func shellArg(p string) string {
	if strings.HasPrefix(p, "-") {
		p = "./" + p
	}
	if p != "" && strings.Trim(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+,:@%") == "" {
		return p
	}
	return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
}
