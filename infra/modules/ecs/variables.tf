variable "name" {
  description = "Prefix of every resource name, e.g. fearless-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "kms_key_arn" {
  description = "KMS key that encrypts the log groups and the registry bucket."
  type        = string
}

variable "repository_arn" {
  description = "ECR repository the model API images are pulled from."
  type        = string
}

variable "bucket_arn" {
  description = "Registry bucket; the model API writes its inference logs under inference_prefix."
  type        = string
}

variable "inference_prefix" {
  description = "Key prefix the model APIs ship inference logs under (FEARLESS_AWS_INFERENCE_PREFIX)."
  type        = string
  default     = "inference"
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps model API and worker logs."
  type        = number
  default     = 365
}
