package module

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// durationUnits lists Flink TimeUtils' units (Flink >= 1.14, which added
// "m"), in its order, with every accepted label.
var durationUnits = []struct {
	name   string
	unit   time.Duration
	labels []string
}{
	{"DAYS", 24 * time.Hour, []string{"d", "day", "days"}},
	{"HOURS", time.Hour, []string{"h", "hour", "hours"}},
	{"MINUTES", time.Minute, []string{"min", "m", "minute", "minutes"}},
	{"SECONDS", time.Second, []string{"s", "sec", "secs", "second", "seconds"}},
	{"MILLISECONDS", time.Millisecond, []string{"ms", "milli", "millis", "millisecond", "milliseconds"}},
	{"MICROSECONDS", time.Microsecond, []string{"µs", "micro", "micros", "microsecond", "microseconds"}},
	{"NANOSECONDS", time.Nanosecond, []string{"ns", "nano", "nanos", "nanosecond", "nanoseconds"}},
}

var (
	unitByLabel = map[string]time.Duration{}
	allUnits    string
)

func init() {
	var parts []string
	for _, u := range durationUnits {
		for _, l := range u.labels {
			unitByLabel[l] = u.unit
		}
		parts = append(parts, fmt.Sprintf("%s: (%s)", u.name, strings.Join(u.labels, " | ")))
	}
	allUnits = strings.Join(parts, ", ")
}

// javaTrim trims as Java's String.trim: every char <= ' ' at both ends.
func javaTrim(s string) string {
	return strings.TrimFunc(s, func(r rune) bool { return r <= ' ' })
}

// ParseDuration parses a duration the way Flink's TimeUtils.parseDuration
// does: a decimal integer, optional whitespace, then an optional
// case-insensitive unit among d/day/days, h/hour/hours,
// min/m/minute/minutes, s/sec/secs/second/seconds,
// ms/milli/millis/millisecond/milliseconds,
// µs/micro/micros/microsecond/microseconds and
// ns/nano/nanos/nanosecond/nanoseconds. Without a unit the value is in
// milliseconds. Examples: "5min", "2 s", "100ms", "60000millisecond",
// "1minutes", "500".
//
// Negative and fractional values are rejected, as upstream. A value too
// large for time.Duration (about 292 years) is an error.
func ParseDuration(text string) (time.Duration, error) {
	trimmed := javaTrim(text)
	if trimmed == "" {
		return 0, errors.New("argument is an empty- or whitespace-only string")
	}
	pos := 0
	for pos < len(trimmed) && trimmed[pos] >= '0' && trimmed[pos] <= '9' {
		pos++
	}
	number := trimmed[:pos]
	label := strings.ToLower(javaTrim(trimmed[pos:]))
	if number == "" {
		return 0, errors.New("text does not start with a number")
	}
	value, err := strconv.ParseInt(number, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("the value '%s' cannot be represented as 64bit number (numeric overflow)", number)
	}
	unit := time.Millisecond
	if label != "" {
		u, ok := unitByLabel[label]
		if !ok {
			return 0, fmt.Errorf("time interval unit label '%s' does not match any of the recognized units: %s", label, allUnits)
		}
		unit = u
	}
	if value > math.MaxInt64/int64(unit) {
		return 0, fmt.Errorf("the value %s is too large (the maximum is %v)", trimmed, time.Duration(math.MaxInt64))
	}
	return time.Duration(value) * unit, nil
}

// startupDateRe is a lenient form of the upstream pattern
// "yyyy-MM-dd HH:mm:ss.SSS Z": the fraction may have 0 to 9 digits (the
// docs' example has two), 'T' may separate date and time, and the zone may
// be Z, UTC, GMT, +HH, +HHMM or +HH:MM.
var startupDateRe = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})[ Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?[ \t]*(Z|z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$`)

// StartupDatePattern is the upstream pattern of startup dates.
const StartupDatePattern = "yyyy-MM-dd HH:mm:ss.SSS Z"

// ParseStartupDate parses the date of a Kafka or Kinesis "date" startup
// position. It accepts the upstream pattern "yyyy-MM-dd HH:mm:ss.SSS Z"
// (for example "2020-02-01 04:15:00.000 +0000") leniently: any number of
// fraction digits (or none, as in the docs' "2020-02-01 04:15:00.00 Z"),
// a 'T' between date and time, and a zone of Z, UTC, GMT, +HH, +HHMM or
// +HH:MM. A zone is required.
func ParseStartupDate(s string) (time.Time, error) {
	bad := fmt.Errorf("Unable to parse date string for startup position: %s; the date should conform to the pattern %s", s, StartupDatePattern)
	m := startupDateRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return time.Time{}, bad
	}
	atoi := func(s string) int { v, _ := strconv.Atoi(s); return v }
	year, month, day := atoi(m[1]), atoi(m[2]), atoi(m[3])
	hour, minute, sec := atoi(m[4]), atoi(m[5]), atoi(m[6])
	nsec := 0
	if m[7] != "" {
		frac := m[7] + strings.Repeat("0", 9-len(m[7]))
		nsec = atoi(frac)
	}
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, bad
	}
	offset := 0
	switch z := m[8]; z {
	case "Z", "z", "UTC", "GMT":
	default:
		sign := 1
		if z[0] == '-' {
			sign = -1
		}
		digits := strings.ReplaceAll(z[1:], ":", "")
		oh, om := atoi(digits[:2]), 0
		if len(digits) == 4 {
			om = atoi(digits[2:])
		}
		if oh > 18 || om > 59 || (oh == 18 && om > 0) {
			return time.Time{}, bad
		}
		offset = sign * (oh*3600 + om*60)
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.FixedZone("", offset))
	if t.Day() != day || int(t.Month()) != month {
		return time.Time{}, bad // e.g. 2021-02-30
	}
	return t, nil
}

// durationMillis converts milliseconds (callers bound ms so it cannot
// overflow).
func durationMillis(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
