package remote

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statefun-go/statefun/statefun/module"
)

// testPKI is a CA made in the test, issuing server and client certificates.
type testPKI struct {
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	pem   []byte
	dir   string
	nextN int64
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "statefun test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &testPKI{cert: cert, key: key, dir: t.TempDir(), nextN: 2}
	p.pem = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return p
}

// issue returns a certificate for key (a new one when nil) as PEM, the key
// as PKCS#8 PEM, and the tls.Certificate.
func (p *testPKI) issue(t *testing.T, client bool, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, tc tls.Certificate) {
	t.Helper()
	if key == nil {
		var err error
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.nextN),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	p.nextN++
	if client {
		tmpl.Subject.CommonName = "statefun runtime"
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames, tmpl.IPAddresses = nil, nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	k8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k8})
	tc, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM, tc
}

func (p *testPKI) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newTLSServer starts an https server with a certificate of the PKI; with
// clientCAs it requires a client certificate signed by them.
func newTLSServer(t *testing.T, p *testPKI, requireClient bool, h http.Handler) *httptest.Server {
	t.Helper()
	_, _, serverCert := p.issue(t, false, nil)
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
	if requireClient {
		pool := x509.NewCertPool()
		pool.AddCert(p.cert)
		srv.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		srv.TLS.ClientCAs = pool
	}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	caPath := p.write(t, "ca.pem", p.pem)
	var proto atomic.Int32
	srv := newTLSServer(t, p, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
		okHandler(t)(w, r)
	}))

	t.Run("trusted CA", func(t *testing.T) {
		for i, loc := range []string{caPath, "file:" + caPath, "file://" + caPath} {
			typ := transports[i%2]
			ep := newEP(srv.URL+"/{function.name}", typ, 10*time.Second)
			ep.Transport.TrustCACerts = loc
			c := newClient(t, ep, Options{})
			out, err := c.Invoke(context.Background(), "greeter", reqBody)
			if err != nil || !bytes.Equal(out, respBody) {
				t.Fatalf("%s: %x %v", loc, out, err)
			}
			// okhttp negotiates HTTP/2 by ALPN, async stays on HTTP/1.1.
			want := int32(1)
			if typ == okhttp {
				want = 2
			}
			if proto.Load() != want {
				t.Errorf("%s: HTTP/%d over TLS, want HTTP/%d", typ, proto.Load(), want)
			}
		}
	})
	t.Run("relative CA path next to the module file", func(t *testing.T) {
		ep := newEP(srv.URL+"/{function.name}", async, 10*time.Second)
		ep.Pos.File = filepath.Join(p.dir, "module.yaml")
		ep.Transport.TrustCACerts = "ca.pem"
		c := newClient(t, ep, Options{})
		if _, err := c.Invoke(context.Background(), "greeter", reqBody); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("untrusted server", func(t *testing.T) {
		// httptest's own self-signed certificate, and no CA given.
		self := httptest.NewUnstartedServer(okHandler(t))
		self.Config.ErrorLog = log.New(io.Discard, "", 0)
		self.StartTLS()
		t.Cleanup(self.Close)
		for _, typ := range transports {
			t.Run(typ[strings.LastIndex(typ, "/")+1:], func(t *testing.T) {
				t.Parallel()
				clock := newFakeClock()
				c := newClient(t, newEP(self.URL+"/{function.name}", typ, testBudget), Options{Now: clock.Now, Sleep: clock.Sleep})
				_, err := c.Invoke(context.Background(), "greeter", reqBody)
				ce := asCallError(t, err)
				// Retried under both transports (upstream retries TLS
				// failures as I/O errors), then final when the budget is
				// spent.
				if !ce.Final || ce.Attempts < 4 {
					t.Errorf("Final %v Attempts %d", ce.Final, ce.Attempts)
				}
				mustContain(t, ce.Error(), "certificate", "call budget")
			})
		}
	})
	t.Run("https+unix", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "tls.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Skipf("unix sockets unavailable: %v", err)
		}
		var host atomic.Value
		_, _, serverCert := p.issue(t, false, nil)
		us := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			host.Store(r.Host)
			okHandler(t)(w, r)
		}))
		us.Listener.Close()
		us.Listener = l
		us.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
		us.StartTLS()
		t.Cleanup(us.Close)
		ep := newEP("https+unix://"+sock+"/{function.name}", okhttp, 10*time.Second)
		ep.Transport.TrustCACerts = caPath
		c := newClient(t, ep, Options{})
		if _, err := c.Invoke(context.Background(), "greeter", reqBody); err != nil {
			t.Fatal(err)
		}
		if host.Load() != "localhost" {
			t.Errorf("Host %q", host.Load())
		}
	})
}

func TestMutualTLS(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	caPath := p.write(t, "ca.pem", p.pem)
	var cn atomic.Value
	srv := newTLSServer(t, p, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		okHandler(t)(w, r)
	}))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certPEM, keyPEM, _ := p.issue(t, true, key)
	certPath := p.write(t, "client.pem", certPEM)
	keyPath := p.write(t, "client.key", keyPEM)
	k8, _ := x509.MarshalPKCS8PrivateKey(key)
	encPath := p.write(t, "client.enc.key", encryptPKCS8(t, k8, "s3cret"))
	pwPath := p.write(t, "password.txt", []byte("s3cret\n"))
	wrongPwPath := p.write(t, "wrong.txt", []byte("nope"))

	ep := func(typ string) *module.Endpoint {
		e := newEP(srv.URL+"/{function.name}", typ, 10*time.Second)
		e.Transport.TrustCACerts = caPath
		return e
	}
	t.Run("client certificate", func(t *testing.T) {
		e := ep(async)
		e.Transport.ClientCert, e.Transport.ClientKey = certPath, keyPath
		c := newClient(t, e, Options{})
		if _, err := c.Invoke(context.Background(), "greeter", reqBody); err != nil {
			t.Fatal(err)
		}
		if cn.Load() != "statefun runtime" {
			t.Errorf("peer %v", cn.Load())
		}
	})
	t.Run("encrypted PKCS#8 key", func(t *testing.T) {
		e := ep(async)
		e.Transport.ClientCert, e.Transport.ClientKey, e.Transport.ClientKeyPassword = certPath, encPath, pwPath
		c := newClient(t, e, Options{})
		if _, err := c.Invoke(context.Background(), "greeter", reqBody); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		e := ep(async)
		e.Transport.ClientCert, e.Transport.ClientKey, e.Transport.ClientKeyPassword = certPath, encPath, wrongPwPath
		_, err := NewClient(e, Options{})
		if err == nil {
			t.Fatal("no error")
		}
		mustContain(t, err.Error(), "module.yaml:3:1", "spec.transport.client_key", "wrong password")
	})
	t.Run("encrypted key without password", func(t *testing.T) {
		e := ep(async)
		e.Transport.ClientCert, e.Transport.ClientKey = certPath, encPath
		_, err := NewClient(e, Options{})
		if err == nil {
			t.Fatal("no error")
		}
		mustContain(t, err.Error(), "spec.transport.client_key", "encrypted", "client_key_password")
	})
	t.Run("no client certificate", func(t *testing.T) {
		e := ep(async)
		e.Transport.Call = testBudget
		clock := newFakeClock()
		c := newClient(t, e, Options{Now: clock.Now, Sleep: clock.Sleep})
		_, err := c.Invoke(context.Background(), "greeter", reqBody)
		mustContain(t, asCallError(t, err).Error(), "certificate")
	})
}

func TestNewClientErrors(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	caPath := p.write(t, "ca.pem", p.pem)
	certPEM, keyPEM, _ := p.issue(t, true, nil)
	certPath := p.write(t, "c.pem", certPEM)
	keyPath := p.write(t, "c.key", keyPEM)
	_, otherKey, _ := p.issue(t, true, nil)
	otherKeyPath := p.write(t, "other.key", otherKey)
	notPEM := p.write(t, "junk.pem", []byte("not a certificate"))
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	legacy := p.write(t, "legacy.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00"}, Bytes: ecDER}))

	for _, tc := range []struct {
		name  string
		tweak func(ep *module.Endpoint)
		want  []string
	}{
		{"missing CA file", func(ep *module.Endpoint) { ep.Transport.TrustCACerts = filepath.Join(p.dir, "nope.pem") },
			[]string{"spec.transport.trust_cacerts", "nope.pem", "no such file"}},
		{"CA file without certificates", func(ep *module.Endpoint) { ep.Transport.TrustCACerts = notPEM },
			[]string{"spec.transport.trust_cacerts", "no PEM CERTIFICATE"}},
		{"classpath CA", func(ep *module.Endpoint) { ep.Transport.TrustCACerts = "classpath:ca.pem" },
			[]string{"spec.transport.trust_cacerts", "classpath resources are not supported"}},
		{"URL CA", func(ep *module.Endpoint) { ep.Transport.TrustCACerts = "https://example.com/ca.pem" },
			[]string{"spec.transport.trust_cacerts", "URL locations are not supported"}},
		{"cert without key", func(ep *module.Endpoint) { ep.Transport.ClientCert = certPath },
			[]string{"spec.transport.client_cert", "needs client_key"}},
		{"key without cert", func(ep *module.Endpoint) { ep.Transport.ClientKey = keyPath },
			[]string{"spec.transport.client_key", "needs client_cert"}},
		{"mismatched key", func(ep *module.Endpoint) { ep.Transport.ClientCert, ep.Transport.ClientKey = certPath, otherKeyPath },
			[]string{"spec.transport.client_cert", "private key does not match"}},
		{"key file without key", func(ep *module.Endpoint) { ep.Transport.ClientCert, ep.Transport.ClientKey = certPath, caPath },
			[]string{"spec.transport.client_key", "no PEM private key"}},
		{"legacy encrypted key", func(ep *module.Endpoint) { ep.Transport.ClientCert, ep.Transport.ClientKey = certPath, legacy },
			[]string{"spec.transport.client_key", "Proc-Type", "openssl pkcs8 -topk8"}},
		{"missing password file", func(ep *module.Endpoint) {
			ep.Transport.ClientCert, ep.Transport.ClientKey, ep.Transport.ClientKeyPassword = certPath, keyPath, "/nonexistent/pw"
		}, []string{"spec.transport.client_key_password", "/nonexistent/pw"}},
		{"bad scheme", func(ep *module.Endpoint) { ep.URLPathTemplate = "ftp://host/{function.name}" },
			[]string{"spec.urlPathTemplate", `unsupported scheme "ftp"`}},
		{"no scheme", func(ep *module.Endpoint) { ep.URLPathTemplate = "host/{function.name}" },
			[]string{"spec.urlPathTemplate", "missing scheme"}},
		{"unix without .sock", func(ep *module.Endpoint) { ep.URLPathTemplate = "http+unix:///var/run/fn/{function.name}" },
			[]string{"spec.urlPathTemplate", ".sock"}},
		{"unknown transport", func(ep *module.Endpoint) { ep.Transport.Type = "com.example/grpc" },
			[]string{"spec.transport.type", `"com.example/grpc"`}},
		{"negative call", func(ep *module.Endpoint) { ep.Transport.Call = -time.Second },
			[]string{"spec.transport.call", "larger than 0"}},
	} {
		ep := newEP("https://127.0.0.1:1/{function.name}", async, time.Second)
		tc.tweak(ep)
		_, err := NewClient(ep, Options{})
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		mustContain(t, err.Error(), append([]string{"module.yaml:3:1: endpoint com.example/*: "}, tc.want...)...)
	}

	// TLS settings on a cleartext URL are ignored with a warning.
	ep := newEP("http://127.0.0.1:1/{function.name}", async, time.Second)
	ep.Transport.TrustCACerts = "classpath:ca.pem"
	var logs logBuf
	if _, err := NewClient(ep, Options{Logger: newLogger(&logs)}); err != nil {
		t.Fatal(err)
	}
	mustContain(t, logs.String(), "level=WARN", "ignored for a cleartext URL")

	// The v1 kind always uses okhttp, and names its fields spec.timeouts.*.
	ep = newEP("http://127.0.0.1:1/{function.name}", async, time.Second)
	ep.Kind = module.KindHTTPv1
	c, err := NewClient(ep, Options{})
	if err != nil || c.TransportType() != okhttp {
		t.Fatalf("v1: %v %v", c, err)
	}
	ep.Transport.Read = -1
	_, err = NewClient(ep, Options{})
	mustContain(t, err.Error(), "spec.timeouts.read")
}

// encryptPKCS8 encrypts a PKCS#8 DER as openssl pkcs8 -topk8 -v2
// aes-256-cbc -v2prf hmacWithSHA256 does.
func encryptPKCS8(t *testing.T, der []byte, password string) []byte {
	t.Helper()
	salt, iv := make([]byte, 16), make([]byte, 16)
	rand.Read(salt)
	rand.Read(iv)
	const iter = 2048
	key, err := pbkdf2.Key(sha256.New, password, salt, iter, 32)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	pad := 16 - len(der)%16
	plain := append(append([]byte(nil), der...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	enc := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(enc, plain)
	must := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kdf := must(asn1.Marshal(pbkdf2Params{Salt: salt, IterationCount: iter, KeyLength: 32,
		PRF: pkix.AlgorithmIdentifier{Algorithm: oidHMACSHA256, Parameters: asn1.NullRawValue}}))
	ivDER := must(asn1.Marshal(iv))
	params := must(asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdf}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	}))
	info := must(asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: enc,
	}))
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: info})
}

// TestDecryptOpenSSLKeys checks decryptPKCS8 against keys encrypted by the
// openssl command line tool, when it is installed.
func TestDecryptOpenSSLKeys(t *testing.T) {
	t.Parallel()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k8, _ := x509.MarshalPKCS8PrivateKey(key)
	plain := filepath.Join(dir, "plain.pem")
	os.WriteFile(plain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k8}), 0o600)

	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"-v2", "aes-256-cbc"}, true},
		{[]string{"-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA1"}, true},
		{[]string{"-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA512"}, true},
		{[]string{"-v2", "des3"}, true},
		{[]string{"-v1", "PBE-SHA1-3DES"}, false},
	} {
		out := filepath.Join(dir, "enc.pem")
		args := append([]string{"pkcs8", "-topk8", "-in", plain, "-out", out, "-passout", "pass:s3cret"}, tc.args...)
		if b, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Logf("openssl %v: %v: %s (skipped)", tc.args, err, b)
			continue
		}
		data, _ := os.ReadFile(out)
		pw := "s3cret"
		keyPEM, err := decodeClientKey(data, &pw)
		if !tc.ok {
			if err == nil || !strings.Contains(err.Error(), "cannot decrypt") {
				t.Errorf("%v: err %v, want a clear refusal", tc.args, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		b, _ := pem.Decode(keyPEM)
		if !bytes.Equal(b.Bytes, k8) {
			t.Errorf("%v: decrypted key differs", tc.args)
		}
		wrong := "wrong"
		if _, err := decodeClientKey(data, &wrong); err == nil {
			t.Errorf("%v: wrong password accepted", tc.args)
		}
	}
}
