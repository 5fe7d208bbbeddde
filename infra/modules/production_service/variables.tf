variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "model" {
  description = "Model name as in its fearless.yaml; the service is <model>-production."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster the service runs in (the one of FEARLESS_AWS_CLUSTER)."
  type        = string
}

variable "cluster_name" {
  description = "Name of that cluster (autoscaling addresses the service by it)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the target group."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the tasks; test environments copy them."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the tasks (the network module's environments group)."
  type        = list(string)
}

variable "listener_arn" {
  description = "HTTPS listener of the internal ALB (network module output https_listener_arn)."
  type        = string
}

variable "listener_priority" {
  description = "Priority of this model's host rule on the listener; unique per model."
  type        = number
}

variable "host_name" {
  description = "Host name the model is served under, e.g. credit.models.example.internal."
  type        = string
}

variable "image" {
  description = "First image to run, before any release (later ones: <repository>:<short digest>)."
  type        = string
}

variable "bundle_digest" {
  description = "Bundle digest of that first image ('' if it is not a Fearless bundle)."
  type        = string
  default     = ""
}

variable "cpu" {
  description = "Fargate CPU units of a task; a bundle whose spec asks more raises it."
  type        = number
  default     = 512
}

variable "memory" {
  description = "Fargate memory (MiB) of a task; a bundle whose spec asks more raises it."
  type        = number
  default     = 1024
}

variable "environment" {
  description = "Environment variables of the model API; test environments get the same."
  type        = map(string)
  default     = { FEARLESS_TRUST_PICKLE = "false" }
}

variable "inference_log_s3" {
  description = "s3://bucket/prefix/production the model API ships its inference log to (the nightly drift check reads it); empty: not shipped."
  type        = string
  default     = ""
}

variable "execution_role_arn" {
  description = "Role ECS pulls the image and writes logs with (ecs module output)."
  type        = string
}

variable "task_role_arn" {
  description = "Role the model API runs as (ecs module output)."
  type        = string
}

variable "log_group_name" {
  description = "CloudWatch log group of production (ecs module, log_group_names[\"production\"])."
  type        = string
}

# Autoscaling: fearless.production.ecs.ProductionScaling has the same defaults
# (tests/unit/test_infra.py checks), and the backend asserts the same policy on each promotion.
variable "min_tasks" {
  description = "Fewest tasks the service scales in to."
  type        = number
  default     = 2
}

variable "max_tasks" {
  description = "Most tasks the service scales out to."
  type        = number
  default     = 10
}

variable "target_cpu_percent" {
  description = "Average CPU utilisation target tracking keeps the service at."
  type        = number
  default     = 60
}

variable "scale_in_cooldown_s" {
  description = "Seconds after a scale-in before the next one."
  type        = number
  default     = 300
}

variable "scale_out_cooldown_s" {
  description = "Seconds after a scale-out before the next one."
  type        = number
  default     = 60
}
