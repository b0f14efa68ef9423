package remote

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
)

// Encrypted PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo) with the PBES2 scheme
// of RFC 8018: PBKDF2 with an HMAC-SHA PRF, and AES-CBC or DES-EDE3-CBC.
// That is what "openssl pkcs8 -topk8 -v2 ..." and "openssl genpkey
// -aes-256-cbc" write, and what Java tools write by default. The PBES1 and
// PKCS#12 PBE schemes are refused with a clear message.

var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}

	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}

	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
)

type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier
	EncryptionScheme  pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"`
}

const pkcs8Hint = "supported: PBES2 with PBKDF2 (HMAC-SHA1/224/256/384/512) and AES-128/192/256-CBC or DES-EDE3-CBC; " +
	"re-encrypt with: openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256"

// decryptPKCS8 decrypts the DER of an EncryptedPrivateKeyInfo and returns
// the DER of the PrivateKeyInfo.
func decryptPKCS8(der, password []byte) ([]byte, error) {
	var info encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(der, &info); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("malformed encrypted PKCS#8 key: %v", err)
	}
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("the key is encrypted with scheme %s, which this engine cannot decrypt (%s)", info.Algorithm.Algorithm, pkcs8Hint)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("malformed PBES2 parameters: %v", err)
	}
	if !params.KeyDerivationFunc.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("the key uses key derivation %s, which this engine cannot use (%s)", params.KeyDerivationFunc.Algorithm, pkcs8Hint)
	}
	var kdf pbkdf2Params
	if _, err := asn1.Unmarshal(params.KeyDerivationFunc.Parameters.FullBytes, &kdf); err != nil {
		return nil, fmt.Errorf("malformed PBKDF2 parameters: %v", err)
	}
	if kdf.IterationCount <= 0 {
		return nil, errors.New("malformed PBKDF2 parameters: iteration count must be positive")
	}

	var newCipher func(key []byte) (cipher.Block, error)
	var keyLen int
	enc := params.EncryptionScheme.Algorithm
	switch {
	case enc.Equal(oidAES128CBC):
		newCipher, keyLen = aes.NewCipher, 16
	case enc.Equal(oidAES192CBC):
		newCipher, keyLen = aes.NewCipher, 24
	case enc.Equal(oidAES256CBC):
		newCipher, keyLen = aes.NewCipher, 32
	case enc.Equal(oidDESEDE3CBC):
		newCipher, keyLen = des.NewTripleDESCipher, 24
	default:
		return nil, fmt.Errorf("the key uses cipher %s, which this engine cannot decrypt (%s)", enc, pkcs8Hint)
	}
	if kdf.KeyLength != 0 && kdf.KeyLength != keyLen {
		return nil, fmt.Errorf("malformed PBKDF2 parameters: key length %d does not match the cipher (%d)", kdf.KeyLength, keyLen)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.EncryptionScheme.Parameters.FullBytes, &iv); err != nil {
		return nil, fmt.Errorf("malformed cipher parameters: %v", err)
	}

	var key []byte
	var err error
	prf := kdf.PRF.Algorithm
	switch {
	case len(prf) == 0 || prf.Equal(oidHMACSHA1):
		key, err = pbkdf2.Key(sha1.New, string(password), kdf.Salt, kdf.IterationCount, keyLen)
	case prf.Equal(oidHMACSHA224):
		key, err = pbkdf2.Key(sha256.New224, string(password), kdf.Salt, kdf.IterationCount, keyLen)
	case prf.Equal(oidHMACSHA256):
		key, err = pbkdf2.Key(sha256.New, string(password), kdf.Salt, kdf.IterationCount, keyLen)
	case prf.Equal(oidHMACSHA384):
		key, err = pbkdf2.Key(sha512.New384, string(password), kdf.Salt, kdf.IterationCount, keyLen)
	case prf.Equal(oidHMACSHA512):
		key, err = pbkdf2.Key(sha512.New, string(password), kdf.Salt, kdf.IterationCount, keyLen)
	default:
		return nil, fmt.Errorf("the key uses PBKDF2 PRF %s, which this engine cannot use (%s)", prf, pkcs8Hint)
	}
	if err != nil {
		return nil, fmt.Errorf("deriving the key: %v", err)
	}
	block, err := newCipher(key)
	if err != nil {
		return nil, err
	}
	bs := block.BlockSize()
	data := info.EncryptedData
	if len(iv) != bs {
		return nil, fmt.Errorf("malformed cipher parameters: IV of %d bytes, want %d", len(iv), bs)
	}
	if len(data) == 0 || len(data)%bs != 0 {
		return nil, errors.New("malformed encrypted PKCS#8 key: data is not a whole number of cipher blocks")
	}
	out := make([]byte, len(data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, data)
	// PKCS#7 padding; a wrong password almost always breaks it.
	pad := int(out[len(out)-1])
	if pad == 0 || pad > bs {
		return nil, errWrongPassword
	}
	for _, b := range out[len(out)-pad:] {
		if int(b) != pad {
			return nil, errWrongPassword
		}
	}
	return out[:len(out)-pad], nil
}

var errWrongPassword = errors.New("cannot decrypt the key with the password from client_key_password (wrong password?)")
