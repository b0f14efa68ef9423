package kafka

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
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// testCA makes a CA and a server certificate it signed, for ips (none:
// the certificate names no address, so host name verification fails).
func testCA(t *testing.T, ips ...net.IP) (caPEM []byte, server tls.Certificate) {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey, srvKey := key(), key()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "broker"}, IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{srvDER, caDER}, PrivateKey: srvKey}
}

// TestSecurity: SSL with a PEM trust store (with and without host name
// verification), SASL PLAIN over TLS and SCRAM over plaintext, end to end
// through a sink and a source.
func TestSecurity(t *testing.T) {
	t.Parallel()
	caPEM, withIP := testCA(t, net.ParseIP("127.0.0.1"))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	caNoIP, noIP := testCA(t)
	caNoIPFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caNoIPFile, caNoIP, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsOpt := func(c tls.Certificate) kfake.Opt { return kfake.TLS(&tls.Config{Certificates: []tls.Certificate{c}}) }
	cases := []struct {
		name    string
		cluster []kfake.Opt
		props   map[string]string
	}{
		{"ssl", []kfake.Opt{tlsOpt(withIP)}, map[string]string{"security.protocol": "SSL", "ssl.truststore.location": caFile}},
		{"ssl-no-hostname-check", []kfake.Opt{tlsOpt(noIP)}, map[string]string{"security.protocol": "SSL",
			"ssl.truststore.location": caNoIPFile, "ssl.truststore.type": "PEM", "ssl.endpoint.identification.algorithm": ""}},
		{"sasl-ssl-plain", []kfake.Opt{tlsOpt(withIP), kfake.EnableSASL(), kfake.Superuser("PLAIN", "alice", "s3cr\"t")},
			map[string]string{"security.protocol": "SASL_SSL", "ssl.truststore.location": caFile, "sasl.mechanism": "PLAIN",
				"sasl.jaas.config": `org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="s3cr\"t";`}},
		{"sasl-scram-512", []kfake.Opt{kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "bob", "pw")},
			map[string]string{"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
				"sasl.jaas.config": `org.apache.kafka.common.security.scram.ScramLoginModule required username="bob" password="pw";`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, addr := cluster(t, 1, []string{"t"}, c.cluster...)
			props := map[string]string{"bootstrap.servers": addr}
			for k, v := range c.props {
				props[k] = v
			}
			sink, _ := openSink(t, SinkConfig{ID: "test/out", Semantic: ExactlyOnce, TransactionTimeout: time.Minute, Properties: props}, 0, nil)
			write(t, sink, "t", seq("s", 0, 5)...)
			if _, err := sink.PositionAt(1); err != nil {
				t.Fatal(err)
			}
			if err := sink.NotifyCheckpointComplete(1); err != nil {
				t.Fatal(err)
			}
			src, _ := openSource(t, SourceConfig{ID: "test/in", Topics: []string{"t"}, Properties: props,
				Startup: StartupPosition{Type: StartEarliest}}, 0, 1, nil)
			if got := recValues(read(t, src, 5, 10*time.Second)); !slices.Equal(got, seq("s", 0, 5)) {
				t.Fatalf("got %q", got)
			}
		})
	}

	// Host name verification is on by default: a certificate that does
	// not name 127.0.0.1 is refused.
	_, addr := cluster(t, 1, []string{"t"}, tlsOpt(noIP))
	cfg := SinkConfig{ID: "test/out", OpenTimeout: 2 * time.Second, Properties: map[string]string{"bootstrap.servers": addr,
		"security.protocol": "SSL", "ssl.truststore.location": caNoIPFile}}
	_, _, err := tryOpenSink(t, cfg, 0, nil)
	wantErr(t, err, "cannot reach the Kafka brokers")
}
