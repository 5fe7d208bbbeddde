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
  description = "URL of the self-hosted Prefect API."
  type        = string
}

variable "prefect_auth_secret_arn" {
  description = "Secrets Manager secret with PREFECT_API_AUTH_STRING."
  type        = string
}
