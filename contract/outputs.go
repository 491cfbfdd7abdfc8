package contract

// Stack outputs: the names under which the Pulumi program exports what a
// client of the deployed stack needs, and under which `streamer --stack`
// reads them back from the profile scripts/deploy.sh saves (the stack's
// `pulumi stack output --json`). One list, so the two cannot drift.
const (
	OutputWebSocketURL       = "webSocketUrl"       // wss://ID.execute-api.REGION.amazonaws.com/STAGE
	OutputManagementEndpoint = "managementEndpoint" // https://ID.execute-api.REGION.amazonaws.com/STAGE
	OutputTableName          = "tableName"          // the connections table
	OutputRegion             = "region"
	OutputStage              = "stage"
	OutputJWTIssuer          = "jwtIssuer"   // the iss $connect requires
	OutputJWTAudience        = "jwtAudience" // the aud $connect requires; "" when not checked
	OutputEnvironment        = "environment" // the Environment metric dimension, resource names streamer-ENV-*
)

// ProfileOutputs lists the outputs `streamer --stack` requires of a stack
// profile (OutputJWTAudience may be empty, the others may not).
func ProfileOutputs() []string {
	return []string{OutputWebSocketURL, OutputManagementEndpoint, OutputTableName, OutputRegion,
		OutputStage, OutputJWTIssuer, OutputJWTAudience, OutputEnvironment}
}
