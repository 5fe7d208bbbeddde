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
  description = "VPC of the server, its database and the ALB."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the server task and of the database (two zones at least)."
  type        = list(string)
}

variable "cluster_arn" {
  description = "ECS cluster the server runs in."
  type        = string
}

variable "host_name" {
  description = "Host name of the Prefect UI and API under the internal ALB, e.g. prefect.fearless.example.com (PREFECT_API_URL is https://<host_name>/api)."
  type        = string
}

variable "listener_arn" {
  description = "HTTPS listener of the internal ALB (module network)."
  type        = string
}

variable "listener_priority" {
  description = "Priority of the server's listener rule (unique among the listener's rules)."
  type        = number
  default     = 10
}

variable "alb_security_group_id" {
  description = "Security group of the internal ALB (module network); it may reach the server on 4200."
  type        = string
}

variable "execution_role_arn" {
  description = "Execution role (pulls the image, writes logs, reads the two secrets)."
  type        = string
}

variable "execution_role_name" {
  description = "Name of that role; this module grants it the database and auth secrets."
  type        = string
}

variable "log_group_name" {
  description = "CloudWatch log group of the server."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the database's storage, its Performance Insights, its secret."
  type        = string
}

variable "prefect_auth_secret_arn" {
  description = "Secrets Manager secret holding the server's auth string (user:password)."
  type        = string
}

variable "server_image" {
  description = "Image of the server, pinned to the locked Prefect version."
  type        = string
  default     = "prefecthq/prefect:3.8.8-python3.11"
}

variable "server_cpu" {
  description = "CPU units of the server task (1024 = 1 vCPU)."
  type        = number
  default     = 1024
}

variable "server_memory" {
  description = "Memory of the server task in MiB."
  type        = number
  default     = 2048
}

variable "db_instance_class" {
  description = "RDS instance class of the database."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_engine_version" {
  description = "PostgreSQL major version of the database."
  type        = string
  default     = "16"
}

variable "db_allocated_storage_gb" {
  description = "Storage of the database at creation in GiB (it grows up to db_max_storage_gb)."
  type        = number
  default     = 20
}

variable "db_max_storage_gb" {
  description = "Most storage autoscaling may grow the database to, in GiB."
  type        = number
  default     = 200
}

variable "db_backup_retention_days" {
  description = "Days of automated backups of the database."
  type        = number
  default     = 7
}
