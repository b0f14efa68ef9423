// Command smokecmd is the smoke test's application: the statefun CLI
// (app.Main) plus the command interpreter function and the generator
// ingress of package smoke. The run's parameters come from SMOKE_*
// environment variables (smoke.ParamsFromEnv), so the flags are exactly
// those of `statefun run`:
//
//	SMOKE_N=32 SMOKE_COUNT=3000 SMOKE_SEED=7 smokecmd run --module module.yaml \
//	    --parallelism 2 --checkpoint-interval 100ms --state-dir state
//
// The module declares the two file egresses (smoke.ModuleYAML).
package main

import (
	"fmt"
	"os"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/internal/smoke"
)

func main() {
	p, err := smoke.ParamsFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "smokecmd: %v\n", err)
		os.Exit(2)
	}
	app.Main(
		app.WithFunctions(smoke.Functions(p)...),
		func(c *app.Config) { c.Ingresses = append(c.Ingresses, smoke.Ingress(p)) },
	)
}
