output "task_definition_family" {
  description = "Family of the load generator's task definition (FEARLESS_AWS_LOADGEN_TASK_DEFINITION); null without an image."
  value       = one(aws_ecs_task_definition.this[*].family)
}

output "task_role_arn" {
  description = "Role of the load generator's tasks; the worker may pass it to ECS."
  value       = aws_iam_role.this.arn
}
