package provider

import (
	"net/http"
	"testing"
)

func TestKindString(t *testing.T) {
	tests := []struct {
		kind Kind
		want string
	}{
		{KindClient, "client"},
		{KindAuth, "auth"},
		{KindBlocked, "blocked"},
		{KindRateLimit, "rate_limit"},
		{KindModel, "model"},
		{KindTransient, "transient"},
		{Kind(99), "kind(99)"},
	}
	for _, tt := range tests {
		if got := tt.kind.String(); got != tt.want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(tt.kind), got, tt.want)
		}
	}
}

func TestTypeForStatus(t *testing.T) {
	tests := []struct {
		status int
		want   string
	}{
		{http.StatusBadRequest, "invalid_request_error"},
		{http.StatusUnauthorized, "authentication_error"},
		{http.StatusForbidden, "permission_error"},
		{http.StatusNotFound, "not_found_error"},
		{http.StatusNotAcceptable, "invalid_request_error"},
		{http.StatusRequestEntityTooLarge, "invalid_request_error"},
		{http.StatusTooManyRequests, "rate_limit_error"},
		{http.StatusInternalServerError, "api_error"},
		{http.StatusBadGateway, "api_error"},
		{599, "api_error"},
	}
	for _, tt := range tests {
		if got := TypeForStatus(tt.status); got != tt.want {
			t.Errorf("TypeForStatus(%d) = %q, want %q", tt.status, got, tt.want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Status: 429, Type: "rate_limit_error", Code: "upstream_rate_limited", Message: "slow down", Kind: KindRateLimit}
	if got, want := e.Error(), "429 upstream_rate_limited: slow down"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
