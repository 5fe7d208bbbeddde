resource "aws_service_discovery_private_dns_namespace" "this" {
  name        = "${var.name}.internal"
  description = "Test environments register here: <role>-<release>.${var.name}.internal"
  vpc         = var.vpc_id
  tags        = var.tags
}

resource "aws_security_group" "worker" {
  #checkov:skip=CKV2_AWS_5: attached in module prefect_worker (worker service) and to every flow-run task via the work pool's job template
  name        = "${var.name}-worker"
  description = "Prefect worker and flow-run tasks (the load generator runs here)"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_security_group" "environments" {
  #checkov:skip=CKV2_AWS_5: attached at run time to the ECS services Fearless creates (FEARLESS_AWS_SECURITY_GROUPS)
  name        = "${var.name}-environments"
  description = "Model API tasks: test environments and the production service"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_security_group" "alb" {
  name        = "${var.name}-alb"
  description = "Internal ALB in front of the production model API"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "environments_from_worker" {
  security_group_id            = aws_security_group.environments.id
  referenced_security_group_id = aws_security_group.worker.id
  description                  = "load tests and drift checks call the model API"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  tags                         = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "environments_from_alb" {
  security_group_id            = aws_security_group.environments.id
  referenced_security_group_id = aws_security_group.alb.id
  description                  = "production traffic and health checks from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  tags                         = var.tags
}

# A bake's shadow (the previous version, `<model>-shadow` in the namespace) runs with the
# production service's network configuration, so in this same group: production's model API
# forwards its sample of requests to it on 8080. Security groups check egress too, hence both.
resource "aws_vpc_security_group_ingress_rule" "environments_from_environments" {
  security_group_id            = aws_security_group.environments.id
  referenced_security_group_id = aws_security_group.environments.id
  description                  = "production model API to a bake's shadow"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "environments_to_environments" {
  security_group_id            = aws_security_group.environments.id
  referenced_security_group_id = aws_security_group.environments.id
  description                  = "production model API to a bake's shadow"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  tags                         = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "alb_from_vpc" {
  security_group_id = aws_security_group.alb.id
  cidr_ipv4         = var.vpc_cidr
  description       = "HTTPS from inside the VPC only (the ALB is internal)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  tags              = var.tags
}

resource "aws_vpc_security_group_egress_rule" "alb_to_environments" {
  security_group_id            = aws_security_group.alb.id
  referenced_security_group_id = aws_security_group.environments.id
  description                  = "forward to the model API"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "worker_to_environments" {
  security_group_id            = aws_security_group.worker.id
  referenced_security_group_id = aws_security_group.environments.id
  description                  = "load generator to the model API"
  ip_protocol                  = "tcp"
  from_port                    = 8080
  to_port                      = 8080
  tags                         = var.tags
}

# The load generator's master and workers (fearless.loadtest.ecs_fleet) run in this group:
# each worker connects to the master's private IP on Locust's port (egress is checked too).
resource "aws_vpc_security_group_ingress_rule" "worker_from_worker_locust" {
  security_group_id            = aws_security_group.worker.id
  referenced_security_group_id = aws_security_group.worker.id
  description                  = "load generator workers to their Locust master"
  ip_protocol                  = "tcp"
  from_port                    = 5557
  to_port                      = 5557
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "worker_to_worker_locust" {
  security_group_id            = aws_security_group.worker.id
  referenced_security_group_id = aws_security_group.worker.id
  description                  = "load generator workers to their Locust master"
  ip_protocol                  = "tcp"
  from_port                    = 5557
  to_port                      = 5557
  tags                         = var.tags
}

resource "aws_vpc_security_group_egress_rule" "https" {
  for_each          = { worker = aws_security_group.worker.id, environments = aws_security_group.environments.id }
  security_group_id = each.value
  cidr_ipv4         = "0.0.0.0/0"
  description       = "HTTPS to AWS APIs, ECR and the Prefect API (through NAT)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  tags              = var.tags
}

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_76: the ALB is internal (no internet path); a WAF with Log4j rules guards internet-facing ALBs
  #checkov:skip=CKV2_AWS_28: as above, internal ALB: WAF is for internet-facing load balancers
  name                       = "${var.name}-alb"
  internal                   = true
  load_balancer_type         = "application"
  security_groups            = [aws_security_group.alb.id]
  subnets                    = var.private_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = true
  access_logs {
    bucket  = var.alb_access_log_bucket
    prefix  = var.name
    enabled = true
  }
  tags = var.tags
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = var.certificate_arn
  default_action {
    type = "fixed-response"
    fixed_response {
      content_type = "text/plain"
      message_body = "no such model"
      status_code  = "404"
    }
  }
  tags = var.tags
}
