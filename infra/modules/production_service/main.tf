# A model's production service. Fearless finds it by its name, "<model>-production" (see
# fearless/environments/ecs/config.py): test environments copy its task definition, and a
# promotion rolls it to a new revision of that definition with only the bundle changed.
# Terraform creates the first revision; releases own the ones after it (ignore_changes).

data "aws_region" "this" {}

locals {
  service_name = "${var.model}-production"
  # The inference log's own volume: the root filesystem is read-only, and the image declares
  # this path a VOLUME owned by its user (uid 10001), which a Fargate bind mount there inherits
  # (fearless.bundles.image.LOG_DIR; a bind mount elsewhere is root's, mode 0755).
  log_dir = "/var/lib/fearless/inference"
  # The image's CMD plus that log dir (fearless.environments.ecs.definitions)
  command = [
    "python", "-m", "fearless.serving", "--bundle", "/bundle", "--host", "0.0.0.0",
    "--port", "8080", "--log-dir", local.log_dir,
  ]
  # Unhealthy while /ready fails or the log dir cannot be written (why goes to the task's log)
  health_check = [
    "CMD", "python", "-m", "fearless.bundles.health", "--log-dir", local.log_dir,
    "--tell", "/proc/1/fd/2",
  ]
  shipping = {
    for k, v in {
      FEARLESS_INFERENCE_LOG_S3 = var.inference_log_s3
      FEARLESS_AWS_REGION       = data.aws_region.this.name
    } : k => v if var.inference_log_s3 != ""
  }
}

resource "aws_lb_target_group" "this" {
  #checkov:skip=CKV_AWS_378: TLS ends at the internal ALB's HTTPS listener; ALB to task is HTTP inside the VPC, limited by security groups to port 8080
  name        = substr("${var.model}-prod", 0, 32)
  port        = 8080
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id
  # A prediction takes milliseconds: 30 s drains the old tasks (AWS's default is 300 s).
  deregistration_delay = 30
  health_check {
    path                = "/ready"
    matcher             = "200"
    interval            = 15
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
  tags = var.tags
}

resource "aws_lb_listener_rule" "this" {
  listener_arn = var.listener_arn
  priority     = var.listener_priority
  action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.this.arn
  }
  condition {
    host_header {
      values = [var.host_name]
    }
  }
  tags = var.tags
}

resource "aws_ecs_task_definition" "this" {
  family                   = local.service_name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = var.execution_role_arn
  task_role_arn            = var.task_role_arn
  # Fargate task storage: these stay writable while the root filesystem is not
  volume {
    name = "tmp"
  }
  volume {
    name = "inference-log"
  }
  runtime_platform {
    cpu_architecture        = "X86_64"
    operating_system_family = "LINUX"
  }
  container_definitions = jsonencode([{
    name                   = "model-api"
    image                  = var.image
    essential              = true
    readonlyRootFilesystem = true
    portMappings           = [{ containerPort = 8080, protocol = "tcp" }]
    mountPoints = [
      { sourceVolume = "tmp", containerPath = "/tmp", readOnly = false },
      { sourceVolume = "inference-log", containerPath = local.log_dir, readOnly = false },
    ]
    command = local.command
    environment = [
      for k, v in merge(var.environment, local.shipping, { FEARLESS_BUNDLE_DIGEST = var.bundle_digest }) :
      { name = k, value = v }
    ]
    healthCheck = {
      command     = local.health_check
      interval    = 10
      timeout     = 3
      retries     = 3
      startPeriod = 30
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = var.log_group_name
        "awslogs-region"        = data.aws_region.this.name
        "awslogs-stream-prefix" = "production"
      }
    }
  }])
  tags = var.tags
}

resource "aws_ecs_service" "this" {
  name                               = local.service_name
  cluster                            = var.cluster_arn
  task_definition                    = aws_ecs_task_definition.this.arn
  desired_count                      = var.min_tasks
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_execute_command             = false
  health_check_grace_period_seconds  = 60
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = false
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.this.arn
    container_name   = "model-api"
    container_port   = 8080
  }
  # A deployment whose tasks never get healthy stops and rolls back (the backend asks the same).
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  lifecycle {
    # Releases roll the service to new revisions; autoscaling moves the desired count.
    ignore_changes = [task_definition, desired_count]
  }
  # fearless:url is where EcsProductionService says the model is served.
  tags = merge(var.tags, { "fearless:url" = "https://${var.host_name}" })
}

resource "aws_appautoscaling_target" "this" {
  service_namespace  = "ecs"
  resource_id        = "service/${var.cluster_name}/${aws_ecs_service.this.name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.min_tasks
  max_capacity       = var.max_tasks
  tags               = var.tags
}

resource "aws_appautoscaling_policy" "cpu" {
  name               = "${var.model}-production-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this.service_namespace
  resource_id        = aws_appautoscaling_target.this.resource_id
  scalable_dimension = aws_appautoscaling_target.this.scalable_dimension
  target_tracking_scaling_policy_configuration {
    target_value       = var.target_cpu_percent
    scale_in_cooldown  = var.scale_in_cooldown_s
    scale_out_cooldown = var.scale_out_cooldown_s
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
  }
}
