// Package app runs StateFun applications: it loads modules, registers the
// embedded functions, translates the module into a job, runs it on the local
// runtime, and reports a summary. It also holds the `statefun` command line
// (Main), so that a user binary with embedded functions is the same CLI:
//
//	func main() { app.Main(app.WithFunctions(myFunctions.Specs()...)) }
//
// cmd/statefun is Main with no embedded functions. Nothing in the engine
// imports this package.
package app
