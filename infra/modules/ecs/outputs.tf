output "cluster_name" {
  description = "ECS cluster (FEARLESS_AWS_CLUSTER)."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "log_group_names" {
  description = "CloudWatch log groups by use (environments: FEARLESS_AWS_LOG_GROUP)."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "log_group_arns" {
  description = "CloudWatch log group ARNs by use."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.arn }
}

output "execution_role_arn" {
  description = "Execution role of model API tasks (FEARLESS_AWS_EXECUTION_ROLE_ARN)."
  value       = aws_iam_role.execution.arn
}

output "task_role_arn" {
  description = "Task role of model API tasks (FEARLESS_AWS_TASK_ROLE_ARN)."
  value       = aws_iam_role.task.arn
}

output "execution_role_name" {
  description = "Name of the execution role (other modules attach policies to it)."
  value       = aws_iam_role.execution.name
}
