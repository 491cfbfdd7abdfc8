package localgw_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/pay-theory/streamer/pkg/localgw"
	"github.com/pay-theory/streamer/pkg/localgw/localgwtest"
)

// The $connect event says how the client reached the gateway, as API
// Gateway's does ("https" there), in both header maps: plain http here,
// whatever the client claims.
func TestConnectEventCarriesXForwardedProto(t *testing.T) {
	connects := newSink()
	s := localgwtest.Start(t, localgw.Config{
		Routes: map[string]localgw.Integration{localgw.RouteConnect: connects.handler(ok())},
	})
	for _, hdr := range []http.Header{nil, {"X-Forwarded-Proto": {"https"}}} {
		dial(t, s, "", hdr)
		ev := connects.next(t)
		if got := ev.Headers["X-Forwarded-Proto"]; got != "http" {
			t.Errorf("client sent %v: headers X-Forwarded-Proto = %q, want http", hdr, got)
		}
		if got := strings.Join(ev.MultiValueHeaders["X-Forwarded-Proto"], ","); got != "http" {
			t.Errorf("client sent %v: multiValueHeaders X-Forwarded-Proto = %q, want [http]", hdr, got)
		}
	}
}
