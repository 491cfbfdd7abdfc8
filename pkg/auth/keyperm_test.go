package auth

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeyPermissionWarnings(t *testing.T) {
	for _, tc := range []struct {
		name             string
		dirMode, keyMode fs.FileMode
		want             []string // one substring per expected warning, in order
	}{
		{"private", 0o700, 0o600, nil},
		{"owner-only bits and group execute", 0o755, 0o710, nil},
		{"group-writable dir", 0o770, 0o600, []string{"is writable by its group (mode 0770): they can replace the key in it"}},
		{"world-writable dir", 0o757, 0o600, []string{"is writable by all other users (mode 0757)"}},
		{"dir writable by both", 0o777, 0o600, []string{"is writable by its group and all other users (mode 0777)"}},
		{"key readable by all", 0o700, 0o644, []string{"is readable by its group and all other users (mode 0644): they can mint tokens with it"}},
		{"key readable by group", 0o700, 0o640, []string{"is readable by its group (mode 0640)"}},
		{"key writable by others", 0o700, 0o602, []string{"is writable by all other users (mode 0602): they can replace it"}},
		{"both", 0o775, 0o664, []string{"key directory", "private key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "key dir") // a space: the Fix must quote it
			key := filepath.Join(dir, PrivateKeyFile)
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(key, []byte("k"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(key, tc.keyMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			ws := KeyPermissionWarnings(key)
			if len(ws) != len(tc.want) {
				t.Fatalf("got %d warnings %v, want %d", len(ws), ws, len(tc.want))
			}
			for i, w := range ws {
				if !strings.Contains(w.String(), tc.want[i]) {
					t.Errorf("warning %d %q does not say %q", i, w, tc.want[i])
				}
				wantPath, wantMode := key, tc.keyMode
				if strings.HasPrefix(w.Problem, "key directory") {
					wantPath, wantMode = dir, tc.dirMode
				}
				if w.Path != wantPath || w.Mode != wantMode || !strings.Contains(w.Problem, wantPath) {
					t.Errorf("warning %d is about %s mode %o, want %s mode %o", i, w.Path, w.Mode, wantPath, wantMode)
				}
				// The advice works as printed.
				if out, err := exec.Command("sh", "-c", w.Fix).CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", w.Fix, err, out)
				}
			}
			if ws := KeyPermissionWarnings(key); len(ws) != 0 {
				t.Errorf("after running each Fix: %v", ws)
			}
		})
	}
}

func TestKeyPermissionWarningsFollowSymlinkAndIgnoreMissing(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.pem")
	if err := os.WriteFile(target, []byte("k"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, PrivateKeyFile)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	// The link's own mode (0777 on Linux) means nothing: the target's does.
	if ws := KeyPermissionWarnings(link); len(ws) != 1 || ws[0].Mode != 0o644 || ws[0].Path != link {
		t.Errorf("symlink to a 0644 key: %v", ws)
	}
	if ws := KeyPermissionWarnings(filepath.Join(dir, "missing.pem")); len(ws) != 0 {
		t.Errorf("missing key in a private dir: %v", ws)
	}
	if ws := KeyPermissionWarnings("/dev/zero"); len(ws) != 0 {
		t.Errorf("a device (the loader refuses it): %v", ws)
	}
}

func TestShellArg(t *testing.T) {
	for in, want := range map[string]string{
		"/home/u/.config/streamer": "/home/u/.config/streamer",
		"/tmp/key dir":             "'/tmp/key dir'",
		"/tmp/it's":                `'/tmp/it'\''s'`,
		"-keys":                    "./-keys",
		"/a/$HOME":                 "'/a/$HOME'",
	} {
		if got := shellArg(in); got != want {
			t.Errorf("shellArg(%q) = %s, want %s", in, got, want)
		}
	}
}
