package stack

import (
	"fmt"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/cloudtrail"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// deployCloudTrail records the table's data events (every Put/Get/Update/
// DeleteItem, with the calling role) in a private, encrypted bucket. Off
// unless streamer:cloudTrail is true: data events are billed per event.
func (d *deployed) deployCloudTrail(ctx *pulumi.Context) error {
	if !d.cfg.CloudTrail {
		return nil
	}
	a := d.acct
	trailName := d.name("table-data-events")
	// Built by hand (not from the trail's output) because the bucket policy
	// must exist before the trail can be created.
	trailArn := fmt.Sprintf("arn:%s:cloudtrail:%s:%s:trail/%s", a.Partition, a.Region, a.ID, trailName)

	bucket, err := s3.NewBucketV2(ctx, "trail-bucket", &s3.BucketV2Args{
		Bucket:       pulumi.String(fmt.Sprintf("%s-trail-%s-%s", d.cfg.NamePrefix, a.ID, a.Region)),
		ForceDestroy: pulumi.Bool(!d.cfg.DeletionProtection),
		Tags:         d.tags,
	})
	if err != nil {
		return err
	}
	if _, err := s3.NewBucketPublicAccessBlock(ctx, "trail-bucket", &s3.BucketPublicAccessBlockArgs{
		Bucket:                bucket.ID(),
		BlockPublicAcls:       pulumi.Bool(true),
		BlockPublicPolicy:     pulumi.Bool(true),
		IgnorePublicAcls:      pulumi.Bool(true),
		RestrictPublicBuckets: pulumi.Bool(true),
	}); err != nil {
		return err
	}
	if _, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, "trail-bucket", &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket: bucket.ID(),
		Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{
			s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
				ApplyServerSideEncryptionByDefault: s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
					SseAlgorithm: pulumi.String("AES256"),
				},
			},
		},
	}); err != nil {
		return err
	}
	doc := bucket.Arn.ApplyT(func(arn string) (string, error) {
		cond := map[string]map[string]any{"StringEquals": {"aws:SourceArn": trailArn}}
		return policy(
			Statement{
				Sid: "CloudTrailAclCheck", Effect: "Allow",
				Principal: map[string]any{"Service": "cloudtrail.amazonaws.com"},
				Action:    []string{"s3:GetBucketAcl"}, Resource: []string{arn}, Condition: cond,
			},
			Statement{
				Sid: "CloudTrailWrite", Effect: "Allow",
				Principal: map[string]any{"Service": "cloudtrail.amazonaws.com"},
				Action:    []string{"s3:PutObject"},
				Resource:  []string{fmt.Sprintf("%s/AWSLogs/%s/*", arn, a.ID)},
				Condition: map[string]map[string]any{"StringEquals": {
					"aws:SourceArn": trailArn, "s3:x-amz-acl": "bucket-owner-full-control",
				}},
			},
		).JSON()
	}).(pulumi.StringOutput)
	bp, err := s3.NewBucketPolicy(ctx, "trail-bucket", &s3.BucketPolicyArgs{Bucket: bucket.ID(), Policy: doc})
	if err != nil {
		return err
	}
	_, err = cloudtrail.NewTrail(ctx, "table-data-events", &cloudtrail.TrailArgs{
		Name:                       pulumi.String(trailName),
		S3BucketName:               bucket.ID(),
		EnableLogFileValidation:    pulumi.Bool(true),
		IncludeGlobalServiceEvents: pulumi.Bool(false),
		IsMultiRegionTrail:         pulumi.Bool(false),
		AdvancedEventSelectors: cloudtrail.TrailAdvancedEventSelectorArray{
			cloudtrail.TrailAdvancedEventSelectorArgs{
				Name: pulumi.String("connections table data events"),
				FieldSelectors: cloudtrail.TrailAdvancedEventSelectorFieldSelectorArray{
					cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs{Field: pulumi.String("eventCategory"), Equals: pulumi.StringArray{pulumi.String("Data")}},
					cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs{Field: pulumi.String("resources.type"), Equals: pulumi.StringArray{pulumi.String("AWS::DynamoDB::Table")}},
					cloudtrail.TrailAdvancedEventSelectorFieldSelectorArgs{Field: pulumi.String("resources.ARN"), Equals: pulumi.StringArray{d.table.Arn}},
				},
			},
		},
		Tags: d.tags,
	}, pulumi.DependsOn([]pulumi.Resource{bp}))
	return err
}
