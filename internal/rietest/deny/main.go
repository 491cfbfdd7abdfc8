// Command deny is a Lambda function that refuses every event with 403
// Forbidden: a $connect authorizer that lets nobody in, for tests of a
// $connect route replaced by a user's own function (rietest.BuildBootstrap
// builds it, rietest.Start serves it).
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func main() { lambda.Start(deny) }

func deny(context.Context, events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
	return events.APIGatewayProxyResponse{
		StatusCode: 403,
		Headers:    map[string]string{"Content-Type": "application/json"},
		Body:       `{"message":"Forbidden"}`,
	}, nil
}
