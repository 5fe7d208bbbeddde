output "worker_role_arn" {
  description = "Role of the worker and of the flow runs it starts (set it in the pool's job template)."
  value       = aws_iam_role.worker.arn
}

output "event_queue_name" {
  description = "SQS queue of ECS task state changes the worker observes."
  value       = aws_sqs_queue.events.name
}

output "service_name" {
  description = "ECS service running the worker."
  value       = aws_ecs_service.this.name
}
