// Command statefun is the Stateful Functions runtime: `statefun run`,
// `statefun validate`, `statefun version`. Binaries with embedded Go
// functions call app.Main with their functions instead (see examples/).
package main

import "github.com/statefun-go/statefun/app"

func main() { app.Main() }
