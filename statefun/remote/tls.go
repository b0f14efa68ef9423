package remote

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/statefun-go/statefun/statefun/module"
)

// tlsSettingsPresent reports whether the endpoint configures any TLS
// material.
func tlsSettingsPresent(t module.Transport) bool {
	return t.TrustCACerts != "" || t.ClientCert != "" || t.ClientKey != "" || t.ClientKeyPassword != ""
}

// buildTLS loads the endpoint's TLS material into a client configuration:
// trust_cacerts replaces the system roots, client_cert and client_key give
// the mutual TLS certificate, client_key_password decrypts an encrypted
// PKCS#8 key.
func buildTLS(ep *module.Endpoint) (*tls.Config, error) {
	t := ep.Transport
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}

	if t.TrustCACerts != "" {
		field := transportField(ep, "trust_cacerts")
		data, path, err := readLocation(ep, t.TrustCACerts)
		if err != nil {
			return nil, configError(ep, field, "%v", err)
		}
		pool, err := parseCertPool(data)
		if err != nil {
			return nil, configError(ep, field, "%s: %v", path, err)
		}
		cfg.RootCAs = pool
	} else if pool, err := x509.SystemCertPool(); err == nil {
		// Load the system roots now rather than during the first call's
		// budget (it can take a while); nil keeps Go's default on error.
		cfg.RootCAs = pool
	}

	switch {
	case t.ClientCert != "" && t.ClientKey == "":
		return nil, configError(ep, transportField(ep, "client_cert"), "client_cert needs client_key (mutual TLS needs both)")
	case t.ClientKey != "" && t.ClientCert == "":
		return nil, configError(ep, transportField(ep, "client_key"), "client_key needs client_cert (mutual TLS needs both)")
	case t.ClientKeyPassword != "" && t.ClientKey == "":
		return nil, configError(ep, transportField(ep, "client_key_password"), "client_key_password needs client_key")
	}
	if t.ClientCert != "" {
		certField := transportField(ep, "client_cert")
		keyField := transportField(ep, "client_key")
		certPEM, certPath, err := readLocation(ep, t.ClientCert)
		if err != nil {
			return nil, configError(ep, certField, "%v", err)
		}
		keyData, keyPath, err := readLocation(ep, t.ClientKey)
		if err != nil {
			return nil, configError(ep, keyField, "%v", err)
		}
		var password *string
		if t.ClientKeyPassword != "" {
			pwField := transportField(ep, "client_key_password")
			raw, _, err := readLocation(ep, t.ClientKeyPassword)
			if err != nil {
				return nil, configError(ep, pwField, "%v", err)
			}
			pw := strings.TrimRight(string(raw), "\r\n")
			password = &pw
		}
		keyPEM, err := decodeClientKey(keyData, password)
		if err != nil {
			return nil, configError(ep, keyField, "%s: %v", keyPath, err)
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, configError(ep, certField, "%s with key %s: %v", certPath, keyPath, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// readLocation reads a TLS material location: a file path, or a "file:"
// location (file:/abs, file:rel, file:///abs). A relative path is looked up
// next to the module file first, then in the working directory.
// "classpath:" resources and remote URLs are not supported. It returns the
// data and the path read.
func readLocation(ep *module.Endpoint, loc string) ([]byte, string, error) {
	path := loc
	switch {
	case strings.HasPrefix(loc, "classpath:"):
		return nil, "", fmt.Errorf("%q: classpath resources are not supported by this engine; give a file path", loc)
	case strings.HasPrefix(loc, "file://"):
		u, err := url.Parse(loc)
		if err != nil {
			return nil, "", fmt.Errorf("%q: invalid file URL: %v", loc, unwrapURLError(err))
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, "", fmt.Errorf("%q: file URL with a remote host is not supported", loc)
		}
		path = u.Path
	case strings.HasPrefix(loc, "file:"):
		path = strings.TrimPrefix(loc, "file:")
	case strings.Contains(loc, "://"):
		return nil, "", fmt.Errorf("%q: URL locations are not supported by this engine; give a file path", loc)
	}
	if path == "" {
		return nil, "", fmt.Errorf("%q: empty path", loc)
	}
	if !filepath.IsAbs(path) && ep.Pos.File != "" {
		cand := filepath.Join(filepath.Dir(ep.Pos.File), path)
		if _, err := os.Stat(cand); err == nil {
			path = cand
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, path, fmt.Errorf("cannot read %v", err) // *PathError names the path
	}
	return data, path, nil
}

// parseCertPool parses every CERTIFICATE block of a PEM bundle.
func parseCertPool(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate #%d: %v", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM CERTIFICATE block found")
	}
	return pool, nil
}

// decodeClientKey returns the PEM of the (decrypted) private key: an
// unencrypted key is returned as is, an encrypted PKCS#8 key ("ENCRYPTED
// PRIVATE KEY") is decrypted with the password.
func decodeClientKey(data []byte, password *string) ([]byte, error) {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no PEM private key block found")
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" {
			if password == nil {
				return nil, errors.New("the key is encrypted; set client_key_password to the location of a file holding its password")
			}
			der, err := decryptPKCS8(b.Bytes, []byte(*password))
			if err != nil {
				return nil, err
			}
			if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
				return nil, fmt.Errorf("decrypted key is not a valid PKCS#8 key (wrong password?): %v", err)
			}
			return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
		}
		if _, ok := b.Headers["Proc-Type"]; ok {
			return nil, errors.New("legacy OpenSSL PEM encryption (Proc-Type: 4,ENCRYPTED) is not supported; " +
				"convert the key to encrypted PKCS#8 with: openssl pkcs8 -topk8 -v2 aes-256-cbc -in key.pem -out key.p8.pem")
		}
		return pem.EncodeToMemory(b), nil
	}
}
