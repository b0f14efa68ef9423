package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/statefun/translate"
)

// ---- 7. unix socket endpoint ----

func TestUnixSocketEndpoint(t *testing.T) {
	forEachSDK(t, func(t *testing.T, s sdk) {
		for _, tr := range []struct{ name, yaml string }{
			{"okhttp", okhttpTransport("10s")},
			{"async", asyncTransport("10s")},
		} {
			t.Run(tr.name, func(t *testing.T) {
				sock := filepath.Join(t.TempDir(), "fn.sock")
				var paths pathRecorder
				if s.name == "go-sdk" {
					ln, err := net.Listen("unix", sock)
					if err != nil {
						t.Fatal(err)
					}
					srv := &http.Server{Handler: paths.wrap(goHandler())}
					go srv.Serve(ln)
					t.Cleanup(func() { srv.Close() })
				} else {
					startPythonWith(t, "--unix", sock)
				}
				res := runTypesScenario(t, "http+unix://"+sock+"/{function.name}", tr.yaml)
				t.Logf("job took %v", res.elapsed)
				if s.name == "go-sdk" {
					// The HTTP path is what follows the .sock file, the Host
					// is "localhost" (contract §1.1).
					for _, p := range paths.all() {
						if p != "localhost /types" {
							t.Errorf("request Host and path %q, want \"localhost /types\"", p)
						}
					}
					if len(paths.all()) == 0 {
						t.Error("the server saw no request")
					}
				}
			})
		}
	})
}

// pathRecorder records "Host path" of every request.
type pathRecorder struct {
	mu    sync.Mutex
	paths []string
}

func (p *pathRecorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.paths = append(p.paths, r.Host+" "+r.URL.Path)
		p.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (p *pathRecorder) all() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.paths...)
}

// ---- 8. HTTPS with a test CA ----

// testPKI is a CA and a server certificate for 127.0.0.1 and localhost,
// written as PEM files.
type testPKI struct {
	caFile, certFile, keyFile string
	cert                      tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "statefun conformance test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	p := testPKI{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server-key.pem"),
	}
	write := func(path, typ string, der []byte) []byte {
		b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return b
	}
	write(p.caFile, "CERTIFICATE", caDER)
	certPEM := write(p.certFile, "CERTIFICATE", srvDER)
	keyPEM := write(p.keyFile, "PRIVATE KEY", keyDER)
	if p.cert, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	return p
}

// startTLS serves the functions of s over TLS with the PKI's server
// certificate and returns the base URL (https://127.0.0.1:port).
func startTLS(t *testing.T, s sdk, pki testPKI) string {
	if s.name == "go-sdk" {
		srv := httptest.NewUnstartedServer(goHandler())
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pki.cert}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv.URL
	}
	p := startPythonWith(t, "--port", "0", "--tls-cert", pki.certFile, "--tls-key", pki.keyFile)
	return "https://127.0.0.1:" + p.port
}

func TestHTTPSWithTestCA(t *testing.T) {
	forEachSDK(t, func(t *testing.T, s sdk) {
		pki := newTestPKI(t)
		base := startTLS(t, s, pki)
		t.Run("trusted", func(t *testing.T) {
			runTypesScenario(t, base+"/{function.name}", asyncTransport("10s")+"\ntrust_cacerts: "+pki.caFile)
		})
		t.Run("untrusted-okhttp", func(t *testing.T) {
			// Without trust_cacerts the system roots apply: the test CA is
			// unknown, every attempt fails its handshake until the budget.
			mod := writeModule(t, endpoint("remote/*", base+"/{function.name}", 0, okhttpTransport("500ms")))
			res := runApp(t, 30*time.Second, app.Config{
				Modules:   []string{mod},
				Ingresses: []translate.Ingress{ingress("cf/in", "remote/types", "t1", "x")},
			})
			res.wantFailure(t, 5*time.Second,
				"failure forwarding a message to remote function remote/types/t1",
				"certificate signed by unknown authority",
				"call budget of 500ms spent")
		})
		t.Run("untrusted-async", func(t *testing.T) {
			mod := writeModule(t, endpoint("remote/*", base+"/{function.name}", 0, asyncTransport("500ms")))
			var c capture
			res := runApp(t, 30*time.Second, app.Config{
				Modules:   []string{mod},
				Ingresses: []translate.Ingress{ingress("cf/in", "remote/types", "t1", "x")},
				Egresses:  []translate.Egress{c.egress("cf/out")},
			})
			res.wantFailure(t, 5*time.Second,
				"failure forwarding a message to remote function remote/types/t1",
				"certificate signed by unknown authority",
				"call budget of 500ms spent")
			if n := len(c.all()); n != 0 {
				t.Errorf("%d egress records from a function that was never reached", n)
			}
		})
	})
}
