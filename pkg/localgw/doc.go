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
// # AWS behaviours modelled, with their sources
//
// Sources: [quotas] is AWS's "Quotas for configuring and running a WebSocket
// API" (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html),
// [account] its account-level quotas (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html),
// [routes] "Create routes for WebSocket APIs"
// (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-develop-routes.html),
// [selection] "WebSocket selection expressions"
// (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-selection-expressions.html),
// [route-response] "Set up a route response"
// (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html),
// [connections] "Use @connections commands in your backend service"
// (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html),
// [mapping] "Manage connected users and client apps: $connect and
// $disconnect routes"
// (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html).
// Behaviours marked *observed* are not in AWS's documentation: they come
// from users' reports, collected in this repository's issue #14 (and, for
// the ids, from real ids such as those in github.com/aws/aws-sdk-cpp#1553),
// and are matched as reported.
//
// Connecting:
//   - $connect runs before the upgrade; a non-2xx answer rejects it with that
//     status, headers and body (401/403 also count as auth failures); an
//     unset status code counts as 200; a Sec-WebSocket-Protocol header in the
//     answer selects the subprotocol [mapping].
//   - A $connect integration that fails (an error that is not an HTTP
//     response, or a panic) fails the upgrade with 502 *observed*, not 500;
//     one that overruns the integration timeout with 504 (a choice: AWS is
//     silent; 504 is its REST APIs' answer).
//   - The connection is established (registered) once $connect succeeds and
//     before the 101 is written, so the management API answers 410 for it
//     during $connect and finds it as soon as the client sees the upgrade
//     [connections].
//
// Messages:
//   - Routed by the route selection expression (default
//     $request.body.action, also contract.RouteSelectionExpression) to a
//     route, else $default, else the client gets the frame {"message":
//     "Forbidden", "connectionId":"…", "requestId":"…"} [routes]. The
//     expression may combine several variables and literal text
//     ("${request.body.type}/${request.body.action}"; "\$" is a literal $)
//     [selection]; non-string values are stringified ({"action":42} routes to
//     "42") *observed*.
//   - Only a two-way route (one with a route response) sends its
//     integration's response body to the client; a one-way route's body is
//     dropped [route-response]. Routes are one-way unless wrapped in TwoWay;
//     pkg/localstack marks contract.TwoWayRoutes, the routes the deployment
//     gives a route response, and the routes of your own its Config.Routes
//     say are two-way.
//   - A failing or panicking integration gets the frame with "Internal
//     server error" *observed*. One that overruns Config.IntegrationTimeout
//     (29 s [quotas]) gets the frame with "Endpoint request timed out"
//     *observed*, even when it ignores its ctx, and its late body is never
//     delivered.
//   - Every integration failure (these, and a failing $connect or
//     $disconnect) is logged at Error level on Config.Logger with the route
//     key, the requestId (the one in the client's error frame and in the
//     event the integration received) and the connectionId: the local
//     stand-in for the execution logs API Gateway writes to CloudWatch.
//
// Ids:
//   - Connection, request and message ids have real ids' shape: 15
//     characters of [A-Za-z0-9_-] then "=" ("L0SM9cOFvHcCIhw=") *observed*.
//     The "=" (and a custom NewID's "+" or "/") must be URL-encoded in
//     @connections paths, as the SDKs do.
//   - An @connections id that cannot be one (not that shape, e.g. "abc" or
//     "%%%") answers 400 BadRequestException "Invalid connectionId: …"
//     *observed*; a well-formed unknown id 410 GoneException [connections].
//
// Limits [quotas]:
//   - 128 KB per message and per PostToConnection (413
//     PayloadTooLargeException; over it a client closes with 1009).
//   - 32 KB per frame: a client frame over it closes the connection with
//     1009; an @connections message over it reaches the client as a text
//     frame and continuation frames of at most 32 KB, FIN on the last
//     (here an empty one).
//   - Binary frames from clients close with 1003 (a choice: API Gateway
//     WebSocket APIs carry text; AWS is silent on the code).
//   - Idle timeout (10 min) and maximum duration (2 h) close with 1001
//     "Going away"; DeleteConnection closes with 1000 "Connection Closed
//     Normally"; Shutdown closes with 1001.
//   - Opt-in (Config.AWSQuotas, or the fields it sets): 500 new connections
//     per second, beyond which the upgrade answers 429 before $connect runs;
//     the account throttle on @connections calls, 10,000 requests per second
//     with a burst of 5,000 (a token bucket), beyond which calls answer 429
//     LimitExceededException [account].
//   - Not modelled: routes, integrations, stages and authorizers per API
//     (configuration-time quotas), Lambda authorizer result size, mapping and
//     access log template sizes, the URL length (4096), and the Regions with
//     a lower account throttle. There is no concurrent-connection quota on
//     AWS either [quotas].
//
// Disconnecting and the management API:
//   - $disconnect carries disconnectStatusCode and disconnectReason: the
//     client's own close code and reason, the gateway's code and reason
//     above, or 1006 (RFC 6455's abnormal closure) when the TCP connection
//     simply dropped; the reason texts are this gateway's.
//     $disconnect is best-effort on AWS [mapping]: Faults.DropDisconnect
//     skips it for a fraction of closes, counted in
//     disconnects_dropped_total.
//   - Management errors carry the status, x-amzn-ErrorType and a JSON
//     {"message"} body: GoneException 410 (unknown, closed, not yet
//     established), PayloadTooLargeException 413, BadRequestException 400,
//     ForbiddenException 403 (no "Authorization: AWS4-HMAC-SHA256 …" header:
//     presence only, any credentials work), LimitExceededException 429
//     (throttle, injected fault, or a full client buffer) [connections].
//
// # Choices where AWS is silent or the library cannot follow it exactly
//
//   - Frame size: coder/websocket limits messages, not frames, so the
//     gateway parses the client's frame headers as the bytes arrive (see
//     frameSniffer). A frame over 32 KB is still read (it is under the message
//     limit) but never routed: the connection closes with 1009 "Frame too big".
//   - Slow clients: each connection has a bounded outbound buffer
//     (Config.OutboundBuffer, 1 MiB). A PostToConnection that does not fit is
//     answered at once with 429 LimitExceededException, which is what AWS
//     documents for "the WebSocket client side buffer is full"; nothing ever
//     blocks on a slow client. A client that does not take a frame for
//     Config.WriteTimeout is disconnected (1006 in $disconnect).
//   - Messages from one client are routed one at a time, in order (AWS
//     invokes concurrently, with no ordering guarantee); after a timeout the
//     next message is routed while the late integration runs on. Integrations
//     get a context bounded by Config.IntegrationTimeout that outlives the
//     connection, as a Lambda invocation does.
//   - Idle means no data message and no ping from the client; messages
//     posted to the client do not keep it alive.
//   - Faults (Config.Faults, Gateway.SetFaults) are the AWS regime for
//     tests and load labs: injected 500/429/410 answers, latency and jitter,
//     the @connections throttle and dropped $disconnects, all changeable
//     while serving.
//
// # Scale
//
// An idle connection holds one goroutine (blocked reading the client), 1 KB
// read and write buffers, and two entries in one deadline heap shared by all
// connections (idle timeout and maximum duration); writes run on a goroutine
// started only while messages are queued. docs/decisions.md has the memory
// per connection against a bare coder/websocket server.
//
// Integrations are in-process handlers (HandlerFunc, e.g. the real lambda
// handlers' Handle) or Lambda Invoke endpoints (LambdaInvoke, e.g. the AWS
// Lambda Runtime Interface Emulator running a built bootstrap).
//
// For tests, package localgwtest starts a gateway on a free loopback port with
// ready-made SDK clients; pkg/localstack/localstacktest starts the whole stack.
package localgw
