output "namespace_id" {
  description = "Cloud Map namespace of test environments (FEARLESS_AWS_NAMESPACE_ID)."
  value       = aws_service_discovery_private_dns_namespace.this.id
}

output "namespace_arn" {
  description = "ARN of the Cloud Map namespace (scopes the worker's servicediscovery rights)."
  value       = aws_service_discovery_private_dns_namespace.this.arn
}

output "environments_security_group_id" {
  description = "Security group of model API tasks (FEARLESS_AWS_SECURITY_GROUPS)."
  value       = aws_security_group.environments.id
}

output "worker_security_group_id" {
  description = "Security group of the Prefect worker and its flow-run tasks."
  value       = aws_security_group.worker.id
}

output "alb_arn" {
  description = "ARN of the internal ALB."
  value       = aws_lb.this.arn
}

output "https_listener_arn" {
  description = "HTTPS listener the production service's target group is attached to."
  value       = aws_lb_listener.https.arn
}

output "alb_security_group_id" {
  description = "Security group of the internal ALB (the Prefect server module lets it reach the server)."
  value       = aws_security_group.alb.id
}
