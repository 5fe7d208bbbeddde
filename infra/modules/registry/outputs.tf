output "bucket_name" {
  description = "Registry bucket (FEARLESS_AWS_BUCKET)."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "ARN of the registry bucket."
  value       = aws_s3_bucket.this.arn
}

output "repository_url" {
  description = "ECR repository URI of bundle images (FEARLESS_AWS_ECR_REPOSITORY)."
  value       = aws_ecr_repository.this.repository_url
}

output "repository_arn" {
  description = "ARN of the ECR repository."
  value       = aws_ecr_repository.this.arn
}

output "kms_key_arn" {
  description = "KMS key encrypting the bucket, images, logs and the event queue."
  value       = aws_kms_key.this.arn
}

output "ci_push_policy_json" {
  description = "IAM policy for CI's OIDC role: push bundle images to the repository and source packs to the registry."
  value       = data.aws_iam_policy_document.ci_push.json
}
