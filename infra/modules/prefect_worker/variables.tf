variable "name" {
  description = "Prefix of every resource name, e.g. fearless-prod."
  type        = string
}

variable "tags" {
  description = "Tags added to every resource (on top of the provider's default_tags)."
  type        = map(string)
  default     = {}
}

variable "cluster_arn" {
  description = "ECS cluster the worker, its flow runs and the test environments run in."
  type        = string
}

variable "cluster_name" {
  description = "Name of that cluster (the EventBridge rule filters task events by it)."
  type        = string
}

variable "work_pool" {
  description = "Prefect ECS work pool the worker polls (FEARLESS_WORK_POOL)."
  type        = string
  default     = "fearless-ecs"
}

variable "worker_image" {
  description = "Image of the worker, pinned: prefect-aws's image at the locked versions."
  type        = string
  default     = "prefecthq/prefect-aws:0.7.12-python3.11-prefect3.8.8"
}

variable "prefect_api_url" {
  description = "URL of the self-hosted Prefect API, e.g. https://prefect.internal/api."
  type        = string
}

variable "prefect_auth_secret_arn" {
  description = "Secrets Manager secret holding PREFECT_API_AUTH_STRING (user:password)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the worker task."
  type        = list(string)
}

variable "security_group_id" {
  description = "Security group of the worker and of flow-run tasks."
  type        = string
}

variable "execution_role_arn" {
  description = "Execution role (pulls images, writes logs) shared with model API tasks."
  type        = string
}

variable "execution_role_name" {
  description = "Name of that role; the worker module grants it read access to the auth secret."
  type        = string
}

variable "task_role_arn" {
  description = "Role of model API tasks; the worker may pass it to the services it creates."
  type        = string
}

variable "loadgen_task_role_arn" {
  description = "Role of the load generator's tasks; the flows may pass it when they start them."
  type        = string
}

variable "log_group_name" {
  description = "CloudWatch log group of the worker."
  type        = string
}

variable "bucket_arn" {
  description = "Registry bucket the flows read and write."
  type        = string
}

variable "repository_arn" {
  description = "ECR repository the flows push bundle images to."
  type        = string
}

variable "namespace_arn" {
  description = "Cloud Map namespace the test environments register in."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the event queue, the bucket and the images."
  type        = string
}
