// Package localgw emulates an Amazon API Gateway WebSocket API on one local
// HTTP listener, faithfully enough that code tested against it behaves the
// same on AWS: real WebSocket clients (wscat, browsers, coder/websocket)
// connect to it, and the real AWS SDK apigatewaymanagementapi client and the
// AWS CLI talk to its @connections API unchanged.
//
// One listener serves:
//
//	ws://HOST:PORT/{stage}                       WebSocket API ($connect, routes, $disconnect)
//	http://HOST:PORT/{stage}/@connections/{id}   management API: POST, GET, DELETE
//	http://HOST:PORT/ with X-Amz-Target          embedded DynamoDB API (Config.EmbeddedDynamoDB)
//	GET /health, /metrics (Prometheus), /metrics.json
//
// # AWS behaviours honoured
//
//   - $connect runs before the upgrade; a non-2xx answer rejects it with that
//     status, headers and body (401/403 also count as auth failures). An
//     unset status code counts as 200. A Sec-WebSocket-Protocol header in the
//     answer selects the subprotocol, as on AWS.
//   - The connection is established (registered) once $connect succeeds and
//     before the 101 is written, so the management API answers 410 for it
//     during $connect and finds it as soon as the client sees the upgrade.
//   - Messages are routed by the route selection expression (default
//     $request.body.action) to a route, else $default, else the client gets
//     AWS's frame {"message": "Forbidden", "connectionId":"…", "requestId":"…"}.
//     A failing or panicking integration gets the same frame with
//     "Internal server error". A route response body is sent back to the client.
//   - Ids look like AWS's ("L0SM9cOFvHcCIhw=": 11 random bytes, standard
//     base64), so they contain "+", "/" and "=" and must be URL-encoded.
//   - Limits: 128 KB per message and per PostToConnection (413
//     PayloadTooLargeException), 32 KB per frame, both closing the client with
//     1009; binary frames close with 1003; idle timeout (10 min) and maximum
//     duration (2 h) close with 1001 "Going away"; DeleteConnection closes with
//     1000 "Connection Closed Normally"; Shutdown closes with 1001.
//   - $disconnect carries disconnectStatusCode and disconnectReason: the
//     client's own close code and reason, the gateway's code and reason
//     above, or 1006 when the TCP connection simply dropped.
//   - Management errors carry the status, x-amzn-ErrorType and a JSON
//     {"message"} body: GoneException 410 (unknown, closed, not yet
//     established), PayloadTooLargeException 413, ForbiddenException 403 (no
//     "Authorization: AWS4-HMAC-SHA256 …" header: presence only, any
//     credentials work), LimitExceededException 429 (rate limit, injected
//     fault, or a full client buffer).
//
// # Choices where AWS is silent or the library cannot follow it exactly
//
//   - Frame size: coder/websocket limits messages, not frames, so the
//     gateway parses the client's frame headers as the bytes arrive (see
//     frameSniffer). A frame over 32 KB is still read (it is under the message
//     limit) but never routed: the connection closes with 1009 "Frame too big".
//   - Slow clients: each connection has one writer goroutine and a bounded
//     outbound buffer (Config.OutboundBuffer, 1 MiB). A PostToConnection that
//     does not fit is answered at once with 429 LimitExceededException, which
//     is what AWS documents for "the WebSocket client side buffer is full";
//     nothing ever blocks on a slow client. A client that does not take a
//     frame for Config.WriteTimeout is disconnected (1006 in $disconnect).
//   - Messages from one client are routed one at a time, in order (AWS
//     invokes concurrently, with no ordering guarantee). Integrations get a
//     context bounded by Config.IntegrationTimeout (29 s) that outlives the
//     connection, as a Lambda invocation does.
//   - Idle means no data message and no ping from the client; messages
//     posted to the client do not keep it alive.
//
// Integrations are in-process handlers (HandlerFunc, e.g. the real lambda
// handlers' Handle) or Lambda Invoke endpoints (LambdaInvoke, e.g. the AWS
// Lambda Runtime Interface Emulator running a built bootstrap).
//
// For tests, package localgwtest starts a gateway on a free loopback port with
// ready-made SDK clients.
package localgw
