variable "name" {
  description = "Prefix of every resource name, e.g. fearless-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "noncurrent_version_days" {
  description = "Days an overwritten registry object version is kept before it expires."
  type        = number
  default     = 90
}

variable "access_log_bucket" {
  description = "Existing bucket that receives the registry bucket's server access logs."
  type        = string
}

variable "registry_prefix" {
  description = "Key prefix of the registry in the bucket (FEARLESS_AWS_REGISTRY_PREFIX); CI's policy may put source packs under it."
  type        = string
  default     = "registry"
}
