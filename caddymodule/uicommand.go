package caddymodule

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/proxycast/caddy-proxycast/ui"
)

func uiCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ui [--admin <address>] [--listen 127.0.0.1:2020]",
		Short: "Serves the management page on a loopback port",
		Long: `
Serves the management page (/proxycast/ui/) on a loopback address and forwards
it, and the calls it makes, to the admin API of a running Caddy: only paths
under /proxycast/, never the rest of Caddy's admin API. Use it for an admin API
on a unix socket, and for Caddy's default admin listener too, which turns a
browser's own navigation away. From another machine, forward the port:

  ssh -L 2020:127.0.0.1:2020 server   then open http://127.0.0.1:2020/

Requests that another site makes the browser send, a Host other than the
forwarder's (DNS rebinding) and changes without the browser's Origin are
turned away, as Caddy's admin endpoint turns them away.`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().String("admin", "", "the admin API's address, such as localhost:2019 or unix//run/caddy/admin.sock (default: that of --config, else localhost:2019)")
	cmd.Flags().String("listen", "127.0.0.1:2020", "the loopback address to serve the page at")
	cmd.Flags().StringP("config", "c", "", "Caddy config to take the admin address from")
	cmd.Flags().StringP("adapter", "a", "", "Name of the config adapter for --config")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		fl := caddycmd.Flags{FlagSet: cmd.Flags()}
		addr, err := caddycmd.DetermineAdminAPIAddress(fl.String("admin"), nil, fl.String("config"), fl.String("adapter"))
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return serveUIForwarder(ctx, addr, fl.String("listen"), cmd.OutOrStdout())
	}
	return cmd
}

// serveUIForwarder serves the page at listen, forwarding to the admin API
// at admin, until ctx ends.
func serveUIForwarder(ctx context.Context, admin, listen string, out io.Writer) error {
	u, err := listenUI(admin, listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "The management page is at %s (admin API at %s). Ctrl-C stops it.\n", u.url(), admin)
	if err := probeAdmin(u.fwd); err != nil {
		fmt.Fprintf(out, "Warning: %v\n", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- u.srv.Serve(u.ln) }()
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = u.srv.Shutdown(shut)
		return nil
	case err := <-errc:
		return err
	}
}

// uiServer is the forwarder of `caddy proxycast ui`, listening.
type uiServer struct {
	srv *http.Server
	ln  net.Listener
	fwd *ui.Forwarder
}

func (u *uiServer) url() string { return "http://" + u.fwd.Listen + ui.Prefix }

// listenUI checks the addresses and listens at listen, which must be a
// loopback address.
func listenUI(admin, listen string) (*uiServer, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q is not host:port, such as 127.0.0.1:2020", listen)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--listen %s is not a loopback address: the page changes credentials, so it is served on 127.0.0.1, [::1] or localhost only; reach it from elsewhere with ssh -L", listen)
	}
	fwd, err := newForwarder(admin)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("serving the page at %s: %w", listen, err)
	}
	fwd.Listen = ln.Addr().String()
	return &uiServer{srv: &http.Server{Handler: fwd, ReadHeaderTimeout: 10 * time.Second}, ln: ln, fwd: fwd}, nil
}

// newForwarder reaches the admin API at addr as Caddy's own commands do:
// over TCP with the admin's origin, or over a unix socket with none.
func newForwarder(addr string) (*ui.Forwarder, error) {
	na, err := caddy.ParseNetworkAddress(addr)
	if err != nil || na.PortRangeSize() > 1 {
		return nil, fmt.Errorf("--admin %q is not an admin address, such as localhost:2019 or unix//run/caddy/admin.sock", addr)
	}
	fwd := &ui.Forwarder{Admin: addr}
	dialAddr := na.JoinHostPort(0)
	switch {
	case na.IsUnixNetwork():
		// A socket's permission bits (unix//path|0220) are not part of its path.
		dialAddr, _, _ = strings.Cut(na.Host, "|")
		if dialAddr == "" {
			return nil, fmt.Errorf("--admin %q names no socket; write unix/ and its path, such as unix//run/caddy/admin.sock", addr)
		}
		fwd.AdminHost = "127.0.0.1"
	case na.IsFdNetwork():
		return nil, fmt.Errorf("--admin %q is a file descriptor, which only Caddy itself can use", addr)
	default:
		fwd.AdminHost = dialAddr
		fwd.AdminOrigin = "http://" + dialAddr
	}
	network := na.Network
	fwd.Transport = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, dialAddr)
		},
		// Every config load restarts Caddy's admin listener, and drops
		// connections kept alive to it.
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 2 * time.Minute,
	}
	return fwd, nil
}

// probeAdmin asks the admin API for its providers once, so that a wrong
// address is told at once rather than on the page.
func probeAdmin(fwd *ui.Forwarder) error {
	req, _ := http.NewRequest(http.MethodGet, "http://"+fwd.AdminHost+"/proxycast/providers", nil)
	req.Host = fwd.AdminHost
	if fwd.AdminOrigin != "" {
		req.Header.Set("Origin", fwd.AdminOrigin)
	}
	resp, err := fwd.Transport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("the admin API at %s cannot be reached now (%v); the page will say so until Caddy runs there", fwd.Admin, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("the admin API at %s answered %s: %s (is the proxycast plugin in that Caddy?)", fwd.Admin, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
