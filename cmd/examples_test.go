package cmd

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pay-theory/streamer/contract"
	"github.com/pay-theory/streamer/pkg/localstack"
	"github.com/pay-theory/streamer/pkg/store/schema"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// An example that does not run wastes the first hour of the person who
// copies it. TestExamplesParse takes every command line that runs streamer
// from the commands' Example fields and from the code blocks of the README
// and the docs, and checks that each names a command that exists, with
// flags it has, the right number of arguments, and values that exist: the
// shipped stacks, their issuers and tables, real regions, stages and
// output formats. Values computed by the shell ($VAR, $(...)) pass as
// given; the command lines inside $(...) are checked too.

// docFiles are the documents whose code blocks are checked, from the
// module root.
var docFiles = []string{"README.md", "docs/*.md", "deployment/README.md"}

// exampleLine is one command line and where it was found.
type exampleLine struct{ where, line string }

func TestExamplesParse(t *testing.T) {
	real := shippedValues(t)
	var lines []exampleLine
	walk(NewCmdRoot(newTestEnv(t).f), func(c *cobra.Command) {
		for _, l := range joinContinuations(strings.Split(c.Example, "\n")) {
			lines = append(lines, exampleLine{"`" + c.CommandPath() + "` Example", strings.TrimSpace(l)})
		}
	})
	for _, pattern := range docFiles {
		paths, err := filepath.Glob(filepath.Join("..", pattern))
		if err != nil || len(paths) == 0 {
			t.Fatalf("%s: %v (no files)", pattern, err)
		}
		for _, p := range paths {
			lines = append(lines, codeBlockLines(t, p)...)
		}
	}
	checked := 0
	for _, l := range lines {
		cmds, err := streamerCommands(l.line)
		if err != nil {
			t.Errorf("%s: %q: %v", l.where, l.line, err)
			continue
		}
		for _, args := range cmds {
			checked++
			if err := checkExample(t, args, real); err != nil {
				t.Errorf("%s: %q: %v", l.where, l.line, err)
			}
		}
	}
	t.Logf("checked %d streamer command lines", checked)
	if checked < 50 {
		t.Errorf("only %d streamer command lines found: the extraction broke", checked)
	}
}

// TestExamplesCheckerRefuses: the checker refuses what it is there to
// catch, so a pass means something.
func TestExamplesCheckerRefuses(t *testing.T) {
	real := shippedValues(t)
	for line, want := range map[string]string{
		"streamer dashboard --source cloudwatch --env prod":     `--env "prod" is not a shipped stack`,
		"streamer smoke --issuer streamer-ENV":                  `--issuer "streamer-ENV"`,
		"streamer smoke --table T":                              `--table "T"`,
		"streamer conn ls --tenant":                             "flag needs an argument",
		"streamer conn list":                                    "unknown command",
		"streamer send ID":                                      "accepts 2 arg(s)",
		"streamer token keygen -o table":                        `unknown --output "table"`,
		"streamer smoke --region europe":                        `--region "europe"`,
		"streamer local --stage 'a b'":                          "invalid stage name",
		"streamer conn ls --endpoint http://127.0.0.1:4510/a/b": "its path must be the API's stage alone",
		"streamer dashboard --source cw":                        `--source "cw"`,
		"echo $(streamer conn":                                  "unterminated",
		"x=$(streamer token mint --bogus)":                      "unknown flag: --bogus",
		"streamer conn":                                         "groups commands",
		"streamer --stack prod conn ls":                         `--stack "prod" is not a shipped stack`,
	} {
		cmds, err := streamerCommands(line)
		if err == nil {
			for _, args := range cmds {
				if err = checkExample(t, args, real); err != nil {
					break
				}
			}
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", line, err, want)
		}
	}
	for _, ok := range []string{
		`streamer smoke --stack production --key keys/jwt-private.pem`,
		`npx wscat@6.1.0 -c "ws://127.0.0.1:4510/local?Authorization=$(streamer token mint)"`,
		`streamer conn ls --tenant acme | cut -f1 | streamer broadcast --ids-from - @notice.json`,
		`bin/streamer smoke --ws-url "$WS_URL" --table "$TABLE" --issuer streamer-dev --region eu-west-1`,
		`go run . dashboard --source cloudwatch --env staging --range 3h   # a comment`,
	} {
		cmds, err := streamerCommands(ok)
		if err == nil {
			for _, args := range cmds {
				if err = checkExample(t, args, real); err != nil {
					break
				}
			}
		}
		if err != nil || len(cmds) == 0 {
			t.Errorf("%q: %v (%d commands)", ok, err, len(cmds))
		}
	}
}

// realValues are the values an example may name.
type realValues struct {
	stacks, issuers, tables []string
}

// shippedValues reads the shipped stacks (deployment/pulumi/Pulumi.<stack>.yaml)
// and their issuers; tables follow the stack's naming.
func shippedValues(t *testing.T) realValues {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "deployment", "pulumi", "Pulumi.*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no stack files: %v", err)
	}
	v := realValues{issuers: []string{DefaultIssuer}, tables: []string{schema.DefaultTableName}}
	issuer := regexp.MustCompile(`(?m)^\s+issuer:\s*(\S+)\s*$`)
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "Pulumi."), ".yaml")
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := issuer.FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s: no jwt issuer", f)
		}
		v.stacks = append(v.stacks, name)
		v.issuers = append(v.issuers, string(m[1]))
		v.tables = append(v.tables, schema.DefaultTableName+"-"+name)
	}
	return v
}

var awsRegion = regexp.MustCompile(`^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]$`)

// checkExample parses args (after "streamer") as the CLI would, without
// running anything, and checks the values of the flags it sets.
func checkExample(t *testing.T, args []string, real realValues) error {
	root := NewCmdRoot(newTestEnv(t).f)
	c, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if err := c.ParseFlags(rest); err != nil {
		return err
	}
	pos := c.Flags().Args()
	if c.HasAvailableSubCommands() { // a group (asGroup)
		if len(pos) > 0 {
			return fmt.Errorf("unknown command %q for %q", pos[0], c.CommandPath())
		}
		return fmt.Errorf("`%s` groups commands and does nothing itself", c.CommandPath())
	}
	if err := c.ValidateArgs(pos); err != nil {
		return err
	}
	if c.PreRunE != nil {
		if err := c.PreRunE(c, pos); err != nil {
			return err
		}
	}
	var bad []string
	c.Flags().Visit(func(f *pflag.Flag) {
		v := f.Value.String()
		if strings.Contains(v, "$") { // computed by the shell
			return
		}
		if err := checkFlagValue(f.Name, v, real); err != nil {
			bad = append(bad, err.Error())
		}
	})
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	// The URLs an example gives must resolve as the CLI resolves them.
	fl := GlobalFlags{}
	for name, dst := range map[string]*string{"endpoint": &fl.Endpoint, "ws-url": &fl.WSURL} {
		if f := c.Flags().Lookup(name); f != nil && f.Changed && !strings.Contains(f.Value.String(), "$") {
			*dst = f.Value.String()
		}
	}
	if _, err := ResolveConfig(fl, func(string) string { return "" }, func() (string, error) { return "/keys", nil }); err != nil {
		return err
	}
	return nil
}

// checkFlagValue checks a flag value that must name something real.
func checkFlagValue(name, v string, real realValues) error {
	oneOf := func(what string, set []string) error {
		if slices.Contains(set, v) {
			return nil
		}
		return fmt.Errorf("--%s %q is not %s (%s)", name, v, what, strings.Join(set, ", "))
	}
	switch name {
	case "env":
		return oneOf("a shipped stack", real.stacks)
	case "stack":
		if strings.ContainsRune(v, '/') || strings.HasSuffix(v, ".json") {
			return nil // a profile file
		}
		return oneOf("a shipped stack", real.stacks)
	case "issuer":
		return oneOf("an issuer of streamer local or a shipped stack", real.issuers)
	case "table":
		return oneOf("the local or a shipped stack's table", real.tables)
	case "source":
		return oneOf("a dashboard source", []string{DashboardSourceLocal, DashboardSourceCloudWatch})
	case "region":
		if !awsRegion.MatchString(v) {
			return fmt.Errorf("--region %q is not an AWS region like us-east-1", v)
		}
	case "stage":
		return contract.CheckStage(v)
	case "listen":
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("--listen %q: %v (like %s)", v, err, localstack.DefaultListen)
		}
	}
	return nil
}

// walk calls fn on c and every command under it.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		walk(sub, fn)
	}
}

// joinContinuations joins lines ending in a backslash with the next.
func joinContinuations(lines []string) []string {
	var out []string
	cur := ""
	for _, l := range lines {
		if strings.HasSuffix(strings.TrimRight(l, " "), `\`) {
			cur += strings.TrimSuffix(strings.TrimRight(l, " "), `\`) + " "
			continue
		}
		out = append(out, cur+l)
		cur = ""
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

// codeBlockLines returns the command lines of path's fenced code blocks:
// in a block with shell prompts ("$ "), the prompted lines; in a sh, bash,
// console or untagged block without prompts, every line. Blocks of other
// languages (text, go, json, ...) hold no commands.
func codeBlockLines(t *testing.T, path string) []exampleLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []exampleLine
	var block []string
	in, shell, start := false, false, 0
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		fence := strings.TrimSpace(l)
		switch {
		case !in && strings.HasPrefix(fence, "```"):
			lang := strings.TrimPrefix(fence, "```")
			in, shell, start, block = true, slices.Contains([]string{"", "sh", "bash", "shell", "console"}, lang), n, nil
		case in && fence == "```":
			in = false
			if !shell {
				continue
			}
			prompted := slices.ContainsFunc(block, func(s string) bool { return strings.HasPrefix(s, "$ ") })
			for i, b := range joinContinuations(block) {
				if prompted {
					if !strings.HasPrefix(b, "$ ") {
						continue
					}
					b = strings.TrimPrefix(b, "$ ")
				}
				out = append(out, exampleLine{fmt.Sprintf("%s (block at line %d, line %d)", path, start, i+1), strings.TrimSpace(b)})
			}
		case in:
			block = append(block, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// streamerCommands returns the arguments of every streamer command in a
// shell line: pipelines and lists are split, environment assignments
// skipped, and command substitutions ($(...)) searched too. `streamer`,
// `./streamer`, `bin/streamer` and `go run .` run it.
func streamerCommands(line string) ([][]string, error) {
	words, subs, err := shellSplit(line)
	if err != nil {
		return nil, err
	}
	var out [][]string
	for _, s := range subs {
		inner, err := streamerCommands(s)
		if err != nil {
			return nil, err
		}
		out = append(out, inner...)
	}
	var cmd []string
	flush := func() {
		for len(cmd) > 0 && regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`).MatchString(cmd[0]) {
			cmd = cmd[1:]
		}
		switch {
		case len(cmd) >= 1 && (cmd[0] == "streamer" || cmd[0] == "./streamer" || cmd[0] == "bin/streamer"):
			out = append(out, cmd[1:])
		case len(cmd) >= 3 && cmd[0] == "go" && cmd[1] == "run" && cmd[2] == ".":
			out = append(out, cmd[3:])
		}
		cmd = nil
	}
	for i := 0; i < len(words); i++ {
		switch w := words[i]; w {
		case "\x00|", "\x00;", "\x00&":
			flush()
		case "\x00>", "\x00<":
			i++ // the redirection's target
		default:
			cmd = append(cmd, w)
		}
	}
	flush()
	return out, nil
}

// shellSplit splits a shell line into words (quotes removed; operators |,
// ;, &, >, < as "\x00" + the operator; a comment ends the line) and
// returns the bodies of its command substitutions. A substitution stays in
// its word as written, so the value reads as computed ($).
func shellSplit(line string) (words, subs []string, err error) {
	var cur strings.Builder
	inWord := false
	emit := func() {
		if inWord {
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord = false
	}
	quote := byte(0)
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case ch == '$' && i+1 < len(line) && line[i+1] == '(':
			depth, j := 1, i+2
			for ; j < len(line) && depth > 0; j++ {
				switch line[j] {
				case '(':
					depth++
				case ')':
					depth--
				}
			}
			if depth != 0 {
				return nil, nil, fmt.Errorf("unterminated $( in %q", line)
			}
			subs = append(subs, line[i+2:j-1])
			cur.WriteString(line[i:j])
			inWord = true
			i = j - 1
		case quote == '"':
			switch {
			case ch == '"':
				quote = 0
			case ch == '\\' && i+1 < len(line):
				i++
				cur.WriteByte(line[i])
			default:
				cur.WriteByte(ch)
			}
		case ch == '\'' || ch == '"':
			quote, inWord = ch, true
		case ch == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case ch == ' ' || ch == '\t':
			emit()
		case ch == '#' && !inWord:
			emit()
			return words, subs, nil
		case strings.IndexByte("|;&<>", ch) >= 0:
			emit()
			words = append(words, "\x00"+string(ch))
			for i+1 < len(line) && line[i+1] == ch { // || && >>
				i++
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, nil, fmt.Errorf("unterminated %c quote in %q", quote, line)
	}
	emit()
	return words, subs, nil
}
