variable "region" {
  description = "AWS region to deploy to (FEARLESS_AWS_REGION)."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "fearless"
}

variable "owner" {
  description = "Team or person answerable for these resources (owner tag)."
  type        = string
}

variable "vpc_id" {
  description = "Existing VPC."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of that VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Existing private subnets with egress (NAT or VPC endpoints)."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the internal ALB."
  type        = string
}

variable "log_bucket" {
  description = "Existing bucket for S3 server access logs and ALB access logs."
  type        = string
}

variable "prefect_api_url" {
  description = "URL of a self-hosted Prefect API (unused where prefect_server_host_name is set)."
  type        = string
  default     = ""
}

variable "prefect_server_host_name" {
  description = "Run the Prefect server here (ECS, RDS PostgreSQL) under this host name of the internal ALB; empty: use prefect_api_url."
  type        = string
  default     = ""
}

variable "prefect_auth_secret_arn" {
  description = "Secrets Manager secret with PREFECT_API_AUTH_STRING."
  type        = string
}

variable "inference_prefix" {
  description = "Key prefix of the model APIs' inference logs in the registry bucket (FEARLESS_AWS_INFERENCE_PREFIX)."
  type        = string
  default     = "inference"
}

variable "flow_image" {
  description = "Image of flow-run tasks: this project at /opt/fearless with its dependencies (FEARLESS_AWS_FLOW_IMAGE; empty: Prefect's image)."
  type        = string
  default     = ""
}

variable "production_models" {
  description = "Models served in production on ECS: host name under the ALB, listener rule priority (unique), first image."
  type = map(object({
    host_name         = string
    listener_priority = number
    image             = string
  }))
  default = {}
}

variable "production_min_tasks" {
  description = "Fewest tasks of each production service (FEARLESS_AWS_PRODUCTION_MIN_TASKS)."
  type        = number
  default     = 2
}

variable "production_max_tasks" {
  description = "Most tasks of each production service (FEARLESS_AWS_PRODUCTION_MAX_TASKS)."
  type        = number
  default     = 10
}

variable "production_target_cpu_percent" {
  description = "CPU target of their target tracking (FEARLESS_AWS_PRODUCTION_TARGET_CPU_PERCENT)."
  type        = number
  default     = 60
}
