// Package rie proves the real Lambda artifacts: it builds the bootstrap
// binaries for the host and runs each under the AWS Lambda Runtime Interface
// Emulator (aws-lambda-rie, path in STREAMER_TEST_RIE) against a DynamoDB-API
// emulator. The test is in rie_test.go; this package has no other code.
package rie
