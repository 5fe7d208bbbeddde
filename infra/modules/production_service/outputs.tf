output "service_name" {
  description = "ECS service of the model's production (<model>-production)."
  value       = aws_ecs_service.this.name
}

output "url" {
  description = "Where the model is served (the service's fearless:url tag)."
  value       = "https://${var.host_name}"
}

output "task_definition_family" {
  description = "Family every production revision of the model belongs to."
  value       = aws_ecs_task_definition.this.family
}

output "scaling" {
  description = "Target tracking of the service, as the backend must apply it."
  value = {
    min_tasks            = var.min_tasks
    max_tasks            = var.max_tasks
    target_cpu_percent   = var.target_cpu_percent
    scale_in_cooldown_s  = var.scale_in_cooldown_s
    scale_out_cooldown_s = var.scale_out_cooldown_s
  }
}
