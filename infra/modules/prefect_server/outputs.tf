output "api_url" {
  description = "PREFECT_API_URL of the server, through the internal ALB."
  value       = "https://${var.host_name}/api"
}

output "service_name" {
  description = "ECS service running the server."
  value       = aws_ecs_service.this.name
}

output "security_group_id" {
  description = "Security group of the server task."
  value       = aws_security_group.server.id
}

output "database_endpoint" {
  description = "Address and port of the RDS PostgreSQL database."
  value       = aws_db_instance.this.endpoint
}

output "database_secret_arn" {
  description = "Secrets Manager secret RDS manages with the database's password."
  value       = aws_db_instance.this.master_user_secret[0].secret_arn
}
