// Package e2e holds the end-to-end tests of the engine: whole applications
// run in-process through app.Run (ring, delayed messages, bad input) and the
// greeter example run as a real child process (statefun run / validate).
//
// The package has no code of its own; everything is in _test.go files.
// Run with: go test -race ./e2e/
package e2e
