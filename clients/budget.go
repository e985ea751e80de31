package clients

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Budget is a number of tokens (prompt and completion) per calendar day
// or month in UTC, or per fixed run of a duration.
type Budget struct {
	Tokens int64
	// Period is "day" or "month", or "" for Every.
	Period string
	Every  time.Duration
}

// ParseBudget reads a budget as written in the config: "2000000/day",
// "50000000/month", or tokens per duration ("100000/6h").
func ParseBudget(s string) (Budget, error) {
	n, p, ok := strings.Cut(strings.TrimSpace(s), "/")
	tokens, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || tokens <= 0 {
		return Budget{}, fmt.Errorf("token_budget %q is not tokens per period, such as 2000000/day (day, month or a duration such as 6h)", s)
	}
	switch p {
	case "d", "day":
		return Budget{Tokens: tokens, Period: "day"}, nil
	case "mo", "month":
		return Budget{Tokens: tokens, Period: "month"}, nil
	}
	d, err := time.ParseDuration(p)
	if err != nil || d < time.Minute {
		return Budget{}, fmt.Errorf("token_budget %q: the period %q is not day, month or a duration of a minute or more, such as 6h", s, p)
	}
	return Budget{Tokens: tokens, Every: d}, nil
}

func (b Budget) String() string {
	if b.Tokens == 0 {
		return "none"
	}
	if b.Period != "" {
		return strconv.FormatInt(b.Tokens, 10) + "/" + b.Period
	}
	return strconv.FormatInt(b.Tokens, 10) + "/" + b.Every.String()
}

// Window is the budget's period that holds now: from start, renewing at
// end. Days and months are in UTC; a duration's runs are counted from
// the zero time, so every instance cuts them alike.
func (b Budget) Window(now time.Time) (start, end time.Time) {
	now = now.UTC()
	switch b.Period {
	case "day":
		start = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	case "month":
		start = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
	start = now.Truncate(b.Every)
	return start, start.Add(b.Every)
}
