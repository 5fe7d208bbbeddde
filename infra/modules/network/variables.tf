variable "name" {
  description = "Prefix of every resource name, e.g. fearless-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "VPC the services, the load balancer and the DNS namespace live in."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (with a NAT or VPC endpoints) for tasks and the internal ALB."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the ALB's HTTPS listener."
  type        = string
}

variable "alb_access_log_bucket" {
  description = "Existing bucket that receives the ALB's access logs."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of the VPC; HTTPS egress to AWS endpoints stays inside it when endpoints are used."
  type        = string
}
