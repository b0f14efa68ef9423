package module

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		err  string // substring of the error; "" for success
	}{
		// No unit: milliseconds.
		{"0", 0, ""},
		{"500", 500 * time.Millisecond, ""},
		{"90000", 90 * time.Second, ""},
		{"  42  ", 42 * time.Millisecond, ""},
		// Every unit label, in Flink's order.
		{"1d", 24 * time.Hour, ""},
		{"1day", 24 * time.Hour, ""},
		{"2days", 48 * time.Hour, ""},
		{"1h", time.Hour, ""},
		{"1hour", time.Hour, ""},
		{"3hours", 3 * time.Hour, ""},
		{"5min", 5 * time.Minute, ""},
		{"2m", 2 * time.Minute, ""},
		{"1minute", time.Minute, ""},
		{"1minutes", time.Minute, ""},
		{"15minutes", 15 * time.Minute, ""},
		{"10s", 10 * time.Second, ""},
		{"10sec", 10 * time.Second, ""},
		{"10secs", 10 * time.Second, ""},
		{"1second", time.Second, ""},
		{"10seconds", 10 * time.Second, ""},
		{"100ms", 100 * time.Millisecond, ""},
		{"1milli", time.Millisecond, ""},
		{"2millis", 2 * time.Millisecond, ""},
		{"60000millisecond", time.Minute, ""},
		{"3milliseconds", 3 * time.Millisecond, ""},
		{"7µs", 7 * time.Microsecond, ""},
		{"7micro", 7 * time.Microsecond, ""},
		{"7micros", 7 * time.Microsecond, ""},
		{"7microsecond", 7 * time.Microsecond, ""},
		{"7microseconds", 7 * time.Microsecond, ""},
		{"9ns", 9, ""},
		{"9nano", 9, ""},
		{"9nanos", 9, ""},
		{"9nanosecond", 9, ""},
		{"9nanoseconds", 9, ""},
		// Whitespace between number and unit, and case-insensitive units.
		{"2 s", 2 * time.Second, ""},
		{"1 min", time.Minute, ""},
		{"2\tMIN", 2 * time.Minute, ""},
		{"10 Seconds", 10 * time.Second, ""},
		{"1 MS", time.Millisecond, ""},
		{"007s", 7 * time.Second, ""},
		// Errors.
		{"", 0, "empty- or whitespace-only"},
		{"   ", 0, "empty- or whitespace-only"},
		{"s", 0, "does not start with a number"},
		{"-1s", 0, "does not start with a number"},
		{"+1s", 0, "does not start with a number"},
		{"1.5s", 0, "unit label '.5s'"},
		{"5 mins", 0, "unit label 'mins' does not match any of the recognized units: DAYS: (d | day | days)"},
		{"1y", 0, "unit label 'y'"},
		{"1 s s", 0, "unit label 's s'"},
		{"PT1S", 0, "does not start with a number"},
		{"99999999999999999999", 0, "numeric overflow"},
		{"107000d", 0, "too large"},
		{"9223372036855ms", 0, "too large"},
		{"9223372036854ms", 9223372036854 * time.Millisecond, ""},
	} {
		got, err := ParseDuration(c.in)
		if c.err == "" {
			if err != nil || got != c.want {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ParseDuration(%q) = %v, %v; want error containing %q", c.in, got, err, c.err)
		}
	}
}

func TestParseStartupDate(t *testing.T) {
	utc := func(y int, mo time.Month, d, h, mi, s, ns int) time.Time {
		return time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	}
	for _, c := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		// The upstream pattern yyyy-MM-dd HH:mm:ss.SSS Z.
		{"2020-02-01 04:15:00.000 +0000", utc(2020, 2, 1, 4, 15, 0, 0), true},
		{"2020-02-01 04:15:00.123 +0200", utc(2020, 2, 1, 2, 15, 0, 123e6), true},
		{"2023-09-01 12:30:45.123 -0700", utc(2023, 9, 1, 19, 30, 45, 123e6), true},
		// The docs' example: two fraction digits and a Z zone.
		{"2020-02-01 04:15:00.00 Z", utc(2020, 2, 1, 4, 15, 0, 0), true},
		// Lenient variants.
		{"2020-02-01 04:15:00 +0000", utc(2020, 2, 1, 4, 15, 0, 0), true},
		{"2020-02-01T04:15:00.5Z", utc(2020, 2, 1, 4, 15, 0, 5e8), true},
		{"2020-02-01 04:15:00.123456789 UTC", utc(2020, 2, 1, 4, 15, 0, 123456789), true},
		{"2020-02-01 04:15:00.000 GMT", utc(2020, 2, 1, 4, 15, 0, 0), true},
		{"2020-02-01 04:15:00.000 +05:30", utc(2020, 1, 31, 22, 45, 0, 0), true},
		{"2020-02-01 04:15:00.000 -03", utc(2020, 2, 1, 7, 15, 0, 0), true},
		{"2020-02-01 04:15:00.000+0000", utc(2020, 2, 1, 4, 15, 0, 0), true},
		{"  2020-02-01 04:15:00.000 +0000  ", utc(2020, 2, 1, 4, 15, 0, 0), true},
		{"2024-02-29 00:00:00.000 +0000", utc(2024, 2, 29, 0, 0, 0, 0), true},
		// Invalid.
		{"", time.Time{}, false},
		{"2020-02-01", time.Time{}, false},
		{"2020-02-01 04:15:00.000", time.Time{}, false}, // no zone
		{"2020-02-30 04:15:00.000 +0000", time.Time{}, false},
		{"2023-02-29 04:15:00.000 +0000", time.Time{}, false},
		{"2020-13-01 04:15:00.000 +0000", time.Time{}, false},
		{"2020-00-01 04:15:00.000 +0000", time.Time{}, false},
		{"2020-02-01 24:00:00.000 +0000", time.Time{}, false},
		{"2020-02-01 04:60:00.000 +0000", time.Time{}, false},
		{"2020-02-01 04:15:60.000 +0000", time.Time{}, false},
		{"2020-02-01 04:15:00.0000000000 +0000", time.Time{}, false},
		{"2020-02-01 04:15:00.000 +1900", time.Time{}, false},
		{"2020-02-01 04:15:00.000 +0060", time.Time{}, false},
		{"2020-02-01 04:15:00.000 CET", time.Time{}, false},
		{"20-02-01 04:15:00.000 +0000", time.Time{}, false},
		{"2020/02/01 04:15:00.000 +0000", time.Time{}, false},
	} {
		got, err := ParseStartupDate(c.in)
		if !c.ok {
			if err == nil {
				t.Errorf("ParseStartupDate(%q) = %v, want an error", c.in, got)
			} else if !strings.Contains(err.Error(), "yyyy-MM-dd HH:mm:ss.SSS Z") {
				t.Errorf("ParseStartupDate(%q) error %q does not name the pattern", c.in, err)
			}
			continue
		}
		if err != nil || !got.Equal(c.want) {
			t.Errorf("ParseStartupDate(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}
