// Command streamer is the operator CLI for live WebSocket connections on AWS.
package main

import (
	"os"

	"github.com/pay-theory/streamer/cmd"
)

func main() { os.Exit(cmd.Main()) }
