// Command pulumi is the streamer AWS stack's Pulumi program. Everything is
// in package stack; see deployment/README.md.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/pay-theory/streamer/deployment/pulumi/stack"
)

func main() { pulumi.Run(stack.Program) }
