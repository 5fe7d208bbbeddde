variable "name" {
  description = "Prefix of every resource name, e.g. fearless-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "image" {
  description = "The flow image (this project at /opt/fearless); empty: no task definition yet."
  type        = string
  default     = ""
}

variable "cpu" {
  description = "CPU units of each task: one Locust process uses one vCPU."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Memory (MiB) of each task."
  type        = number
  default     = 2048
}

variable "execution_role_arn" {
  description = "Execution role (pulls the image, writes the logs) shared with the other tasks."
  type        = string
}

variable "log_group_name" {
  description = "CloudWatch log group of the master's and the workers' output."
  type        = string
}

variable "bucket_arn" {
  description = "Registry bucket the traffic and the reports go through."
  type        = string
}

variable "s3_prefix" {
  description = "Key prefix of the load generator's runs in that bucket (EcsFleet's prefix)."
  type        = string
  default     = "loadgen"
}

variable "kms_key_arn" {
  description = "KMS key of the bucket."
  type        = string
}
