// Package conformance checks the request-reply runtime (statefun/dispatch,
// statefun/remote, statefun/protocol) against the official StateFun SDKs.
//
// Every scenario in the tests runs twice: against functions written with the
// official Go SDK (github.com/apache/flink-statefun/statefun-sdk-go/v3,
// served in-process by its own AsHandler) and against the same functions
// written with the official Python SDK (apache-flink-statefun==3.3.0, served
// by conformance/python/functions.py with aiohttp). The Python side runs in a
// virtualenv the tests create under the user cache directory
// (os.UserCacheDir()/statefun-go-conformance/venv, reused when present; set
// STATEFUN_CONFORMANCE_VENV to place it elsewhere and
// STATEFUN_CONFORMANCE_PYTHON to choose the interpreter that creates it). If
// the virtualenv cannot be built the Python tests fail with pip's output;
// they are never skipped.
//
// The fault tests use hand-written HTTP servers (encoding replies with
// statefun/protocol) to check that each failure of a remote function ends
// the job with a defined, precise error within a time bound.
//
// The package holds no code besides its tests.
package conformance
