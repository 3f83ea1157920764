# Plan-time checks of the EC2 host against a mocked AWS provider: no credentials, no network.
# Run by terraform/test.sh (`terraform test`).

mock_provider "aws" {
  mock_data "aws_subnets" {
    defaults = { ids = ["subnet-0a1b2c3d"] }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
}

variables {
  allowed_ssh_cidr = "203.0.113.7/32"
  key_name         = "bench-key"
  repo_url         = "https://example.com/embbench.git"
}

run "defaults" {
  command = plan

  assert {
    condition     = aws_instance.host.instance_type == "c7i.4xlarge"
    error_message = "the default instance type must be c7i.4xlarge"
  }
  assert {
    condition     = aws_instance.host.root_block_device[0].encrypted == true
    error_message = "the root volume must be encrypted"
  }
  assert {
    condition     = aws_instance.host.root_block_device[0].volume_type == "gp3" && aws_instance.host.root_block_device[0].volume_size == 100
    error_message = "the root volume must be 100 GB gp3"
  }
  assert {
    condition     = aws_instance.host.metadata_options[0].http_tokens == "required"
    error_message = "IMDSv2 must be required"
  }
  assert {
    condition     = aws_instance.host.instance_initiated_shutdown_behavior == "terminate"
    error_message = "a halt from inside must terminate the instance"
  }
  assert {
    condition     = length(aws_security_group.host.ingress) == 1
    error_message = "the security group must have exactly one inbound rule"
  }
  assert {
    condition = alltrue([for r in aws_security_group.host.ingress :
      r.from_port == 22 && r.to_port == 22 && r.protocol == "tcp" && toset(r.cidr_blocks) == toset(["203.0.113.7/32"])
      && length(coalesce(r.ipv6_cidr_blocks, [])) == 0 && length(coalesce(r.security_groups, [])) == 0
      && length(coalesce(r.prefix_list_ids, [])) == 0 && r.self != true
    ])
    error_message = "the only inbound rule must be SSH from allowed_ssh_cidr"
  }
  assert {
    condition     = strcontains(local.user_data, "EMBBENCH_MAX_HOURS='16'") && strcontains(local.user_data, "shutdown -h")
    error_message = "user data must carry the max_hours deadline and schedule the halt"
  }
  assert {
    condition     = strcontains(local.user_data, "EMBBENCH_AUTORUN='false'") && !strcontains(local.user_data, "HF_TOKEN=hf_")
    error_message = "user data must carry the settings and no token"
  }
  assert {
    condition     = aws_instance.host.key_name == "bench-key"
    error_message = "the key pair must come from key_name"
  }
  assert {
    condition     = length(aws_instance.host.instance_market_options) == 0
    error_message = "on-demand unless use_spot is set"
  }
  assert {
    condition     = length(aws_iam_role_policy.results_upload) == 0 && length(aws_iam_role_policy.hf_token) == 0 && length(aws_iam_role_policy_attachment.ssm_session) == 0
    error_message = "the instance role must hold no permission unless an option asks for one"
  }
}

run "options" {
  command = plan

  variables {
    instance_type      = "c7i.2xlarge"
    max_hours          = 5
    autorun            = true
    use_spot           = true
    results_bucket     = "my-bench-results"
    hf_token_parameter = "/embbench/hf_token"
    enable_ssm_session = true
  }

  assert {
    condition     = aws_instance.host.instance_type == "c7i.2xlarge"
    error_message = "instance_type must be honoured"
  }
  assert {
    condition     = aws_instance.host.instance_market_options[0].market_type == "spot"
    error_message = "use_spot must request a spot instance"
  }
  assert {
    condition     = strcontains(local.user_data, "EMBBENCH_MAX_HOURS='5'") && strcontains(local.user_data, "EMBBENCH_AUTORUN='true'")
    error_message = "user data must carry max_hours and autorun"
  }
  assert {
    condition     = data.aws_iam_policy_document.results_upload[0].statement[0].resources == toset(["arn:aws:s3:::my-bench-results/embbench/*"])
    error_message = "the upload permission must be limited to the results prefix"
  }
  assert {
    condition     = data.aws_iam_policy_document.results_upload[0].statement[0].actions == toset(["s3:PutObject"])
    error_message = "the upload permission must be s3:PutObject only"
  }
  assert {
    condition     = data.aws_iam_policy_document.hf_token[0].statement[0].resources == toset(["arn:aws:ssm:us-east-1:123456789012:parameter/embbench/hf_token"])
    error_message = "the SSM permission must be limited to the one parameter"
  }
  assert {
    condition     = data.aws_iam_policy_document.hf_token[0].statement[0].actions == toset(["ssm:GetParameter"])
    error_message = "the SSM permission must be ssm:GetParameter only"
  }
  assert {
    condition     = length(aws_iam_role_policy_attachment.ssm_session) == 1
    error_message = "enable_ssm_session must attach the SSM core policy"
  }
}

run "rejects_a_bad_cidr" {
  command = plan
  variables {
    allowed_ssh_cidr = "my laptop"
  }
  expect_failures = [var.allowed_ssh_cidr]
}

run "rejects_ssh_from_anywhere" {
  command = plan
  variables {
    allowed_ssh_cidr = "0.0.0.0/0"
  }
  expect_failures = [var.allowed_ssh_cidr]
}

run "rejects_a_long_max_hours" {
  command = plan
  variables {
    max_hours = 100
  }
  expect_failures = [var.max_hours]
}
